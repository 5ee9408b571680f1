// The one place an image spec becomes an ImageSource or ImageTarget: `oci:DIR[:TAG|@DIGEST]`
// layouts (oci/layout.ts) and registry references `host[:port]/repo[:tag|@digest]`
// (registry/image-endpoint.ts). Convert, commit and image opening all start here, so none of
// them asks which kind it has.

import { DadiError } from '../errors.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import { isLayoutSpec, LayoutSource, LayoutTarget } from '../oci/layout.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.js';
import { RegistrySource, RegistryTarget } from '../registry/image-endpoint.js';
import { formatReference, parseReference } from '../registry/reference.js';

export interface EndpointOptions {
  /** A shared registry client (not closed by the endpoint). */
  client?: RegistryClient;
  /** Options for a client made by the endpoint when `client` is not given. */
  registry?: RegistryClientOptions;
}

function clientFor(opts: EndpointOptions): { client: RegistryClient; owned: boolean } {
  return opts.client
    ? { client: opts.client, owned: false }
    : { client: new RegistryClient(opts.registry), owned: true };
}

/**
 * Open an image to read: `oci:DIR[:TAG|@DIGEST]` or `host[:port]/repo[:tag|@digest]`.
 * @example const src = await openImageSource('oci:./hello:amd64'); const img = await src.resolve();
 */
export async function openImageSource(spec: string, opts: EndpointOptions = {}): Promise<ImageSource> {
  if (isLayoutSpec(spec)) return LayoutSource.open(spec);
  const ref = parseReference(spec);
  const { client, owned } = clientFor(opts);
  return new RegistrySource(formatReference(ref), ref, client, owned);
}

/**
 * Open an image to write: `oci:DIR[:TAG]` (created if absent) or `host[:port]/repo[:tag]`.
 * @example const dst = await openImageTarget('127.0.0.1:5000/app:obd');
 */
export async function openImageTarget(spec: string, opts: EndpointOptions = {}): Promise<ImageTarget> {
  if (isLayoutSpec(spec)) return LayoutTarget.open(spec);
  const ref = parseReference(spec);
  if (ref.digest) throw new DadiError('EINVAL', `${spec}: a target names a tag, not a digest`);
  const { client, owned } = clientFor(opts);
  return new RegistryTarget(formatReference(ref), ref, client, owned);
}
