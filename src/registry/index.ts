// OCI distribution client: references, auth, transport, manifests and blobs, remote blobs.
export * from './auth.js';
export * from './client.js';
export * from './credentials.js';
export * from './image-endpoint.js';
export * from './login.js';
export * from './reference.js';
export * from './remote-blob.js';
export * from './transport.js';
