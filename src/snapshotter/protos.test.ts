import { describe, expect, it } from 'vitest';
import { containerdApi, warmContainerdCodecs } from './protos.js';

describe('warmContainerdCodecs', () => {
  it('builds the codecs, nested ones included, and leaves them encoding and decoding as before', () => {
    warmContainerdCodecs();
    const get = containerdApi().Containers.service.Get!;
    const spec = Buffer.from('{"process":{"args":["cat"]}}');
    const reply = get.responseDeserialize(
      get.responseSerialize({
        container: { id: 'c1', snapshot_key: 'c1', spec: { type_url: 'types.containerd.io/x', value: spec } },
      }),
    ) as { container: { id: string; snapshot_key: string; spec: { value: Buffer } } };
    expect(reply.container.id).toBe('c1');
    expect(reply.container.snapshot_key).toBe('c1');
    expect(Buffer.from(reply.container.spec.value).toString()).toBe(spec.toString());
    const mounts = containerdApi().Snapshots.service.Mounts!;
    const m = mounts.responseDeserialize(
      mounts.responseSerialize({ mounts: [{ type: 'bind', source: '/x', options: ['ro', 'rbind'] }] }),
    ) as { mounts: { type: string; source: string; options: string[] }[] };
    expect(m.mounts).toEqual([{ type: 'bind', source: '/x', target: '', options: ['ro', 'rbind'] }]);
  });
});
