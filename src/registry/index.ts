// OCI distribution client: references, auth, transport, the manifest / blob-read / upload roles
// and the client that joins them, remote blobs, registry image endpoints.
export * from './auth.js';
export * from './blob-reads.js';
export * from './blob-uploads.js';
export * from './client.js';
export * from './credentials.js';
export * from './hosts.js';
export * from './image-endpoint.js';
export * from './login.js';
export * from './manifests.js';
export * from './reference.js';
export * from './remote-blob.js';
export type { OpOptions, RepoRef } from './repo-request.js';
export * from './transport.js';
