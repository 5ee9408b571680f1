import { describe, expect, it } from 'vitest';
import { containerdSnapshotKey, specLaunch } from './container-command.js';

describe('containerdSnapshotKey', () => {
  it("splits containerd's NAMESPACE/TXID/KEY (the key may hold slashes); other forms are not containerd's", () => {
    expect(containerdSnapshotKey('bench/12/bench-4242-0')).toEqual({ namespace: 'bench', key: 'bench-4242-0' });
    expect(containerdSnapshotKey('k8s.io/3/a/b')).toEqual({ namespace: 'k8s.io', key: 'a/b' });
    expect(containerdSnapshotKey('plain-key')).toBeUndefined();
    expect(containerdSnapshotKey('ns/x/key')).toBeUndefined();
  });
});

describe('specLaunch', () => {
  it("names the process's program on its PATH (in order) and its arguments, to read through the mount", () => {
    const spec = {
      process: {
        args: ['python3', '-c', 'import json, http.server; print("imported")'],
        env: ['PATH=/usr/local/bin:/usr/bin:relative', 'LANG=C.UTF-8'],
        cwd: '/',
      },
    };
    expect(specLaunch(spec)).toEqual({
      exec: ['/usr/local/bin/python3', '/usr/bin/python3'],
      args: ['-c', 'import json, http.server; print("imported")'],
      readThrough: true,
    });
  });

  it('a program with a slash is taken from the working directory; no process or no args: nothing', () => {
    expect(specLaunch({ process: { args: ['./run.sh', 'x'], env: [], cwd: '/app' } })?.exec).toEqual(['/app/run.sh']);
    expect(specLaunch({ process: { args: [] } })).toBeUndefined();
    expect(specLaunch({ process: { args: ['sh', 42] } })).toBeUndefined();
    expect(specLaunch({})).toBeUndefined();
    expect(specLaunch(undefined)).toBeUndefined();
  });
});
