import { describe, expect, it } from 'vitest';
import { withExtraCaCerts } from '../util/extra-ca-certs.js';
import { commandArgv } from './rerun.js';

describe('commandArgv', () => {
  it('starts a bundle again through start.cjs beside it, under its name', () => {
    const argv = ['/usr/bin/node', '/opt/dadi/dist/cli/pull.bundle.cjs', 'pull', '--json', 'r/e:f'];
    expect(commandArgv(argv, [])).toEqual([
      '/usr/bin/node',
      '/opt/dadi/dist/cli/start.cjs',
      'pull',
      'pull',
      '--json',
      'r/e:f',
    ]);
  });

  it("starts anything else as node was given it, with node's own flags", () => {
    const argv = ['/usr/bin/node', '/opt/dadi/bin/dadi.js', 'pull', 'r/e:f'];
    expect(commandArgv(argv, ['--import', 'tsx'])).toEqual([
      '/usr/bin/node',
      '--import',
      'tsx',
      '/opt/dadi/bin/dadi.js',
      'pull',
      'r/e:f',
    ]);
  });
});

describe('withExtraCaCerts', () => {
  it('gives back the CA file bin/dadi set aside', () => {
    expect(withExtraCaCerts({ PATH: '/bin', DADI_NODE_EXTRA_CA_CERTS: '/etc/ca.pem' })).toEqual({
      PATH: '/bin',
      NODE_EXTRA_CA_CERTS: '/etc/ca.pem',
    });
  });

  it('is undefined when bin/dadi set nothing aside', () => {
    expect(withExtraCaCerts({ PATH: '/bin' })).toBeUndefined();
  });
});
