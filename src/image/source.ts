// The one place an image spec becomes an ImageSource or ImageTarget: `oci:DIR[:TAG|@DIGEST]`
// layouts (oci/layout.ts) and registry references `host[:port]/repo[:tag|@digest]`
// (registry/image-endpoint.ts). Convert, commit and image opening all start here, so none of
// them asks which kind it has. The registry client (undici and ~100 more modules, ~0.15 s to load)
// is imported only when a spec names a registry: a layout's conversion starts without it.

import { DadiError } from '../errors.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import { isLayoutSpec, LayoutSource, LayoutTarget } from '../oci/layout.js';
import type { RegistryClient, RegistryClientOptions } from '../registry/client.js';
import { formatReference, parseReference } from '../registry/reference.js';

export interface EndpointOptions {
  /** A shared registry client (not closed by the endpoint). */
  client?: RegistryClient;
  /** Options for a client made by the endpoint when `client` is not given. */
  registry?: RegistryClientOptions;
}

async function clientFor(opts: EndpointOptions): Promise<{ client: RegistryClient; owned: boolean }> {
  if (opts.client) return { client: opts.client, owned: false };
  const { RegistryClient } = await import('../registry/client.js');
  return { client: new RegistryClient(opts.registry), owned: true };
}

/**
 * Open an image to read: `oci:DIR[:TAG|@DIGEST]` or `host[:port]/repo[:tag|@digest]`.
 * @example const src = await openImageSource('oci:./hello:amd64'); const img = await src.resolve();
 */
export async function openImageSource(spec: string, opts: EndpointOptions = {}): Promise<ImageSource> {
  if (isLayoutSpec(spec)) return LayoutSource.open(spec);
  const ref = parseReference(spec);
  const { client, owned } = await clientFor(opts);
  const { RegistrySource } = await import('../registry/image-endpoint.js');
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
  const { client, owned } = await clientFor(opts);
  const { RegistryTarget } = await import('../registry/image-endpoint.js');
  return new RegistryTarget(formatReference(ref), ref, client, owned);
}
