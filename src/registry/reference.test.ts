import { describe, expect, it } from 'vitest';
import {
  formatReference,
  isLoopbackHost,
  manifestTarget,
  parseReference,
  registryOrigin,
  registryScheme,
} from './reference.js';

const DIG = `sha256:${'ab'.repeat(32)}`;

describe('parseReference', () => {
  it('parses host, port, repository, tag and digest', () => {
    expect(parseReference('127.0.0.1:5000/dadi/base:v1')).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'dadi/base',
      tag: 'v1',
    });
    expect(parseReference(`reg.example.com/a/b/c@${DIG}`)).toEqual({
      registry: 'reg.example.com',
      repository: 'a/b/c',
      digest: DIG,
    });
    expect(parseReference(`localhost/x:t@${DIG}`)).toEqual({
      registry: 'localhost',
      repository: 'x',
      tag: 't',
      digest: DIG,
    });
    expect(parseReference('[::1]:5000/app')).toEqual({ registry: '[::1]:5000', repository: 'app' });
    expect(parseReference('Reg.Example.COM:443/a_b/c-d.e__f')).toEqual({
      registry: 'reg.example.com:443',
      repository: 'a_b/c-d.e__f',
    });
  });

  it('round-trips', () => {
    for (const s of ['127.0.0.1:5000/dadi/base:v1', `h.io/a@${DIG}`, `h.io/a:t@${DIG}`, '[::1]:80/x']) {
      expect(formatReference(parseReference(s))).toBe(s);
    }
  });

  it('gives clear errors', () => {
    expect(() => parseReference('ubuntu:22.04')).toThrow(/no registry host/);
    expect(() => parseReference('library/ubuntu')).toThrow(/no registry host/);
    expect(() => parseReference('https://h.io/x')).toThrow(/without a URL scheme/);
    expect(() => parseReference('h.io/Upper')).toThrow(/bad repository component/);
    expect(() => parseReference('h.io/x:bad tag')).toThrow(/bad tag/);
    expect(() => parseReference('h.io:99999/x')).toThrow(/bad port/);
    expect(() => parseReference('h.io/x@sha256:123')).toThrow(/not a valid digest/);
    expect(() => parseReference('h.io/')).toThrow(/no repository/);
  });

  it('targets digest, else tag, else latest', () => {
    expect(manifestTarget(parseReference(`h.io/a:t@${DIG}`))).toBe(DIG);
    expect(manifestTarget(parseReference('h.io/a:t'))).toBe('t');
    expect(manifestTarget(parseReference('h.io/a'))).toBe('latest');
  });
});

describe('schemes', () => {
  it('uses plain HTTP for loopback and insecure hosts only', () => {
    expect(isLoopbackHost('127.0.0.1:5000')).toBe(true);
    expect(isLoopbackHost('127.8.9.1')).toBe(true);
    expect(isLoopbackHost('[::1]:5000')).toBe(true);
    expect(isLoopbackHost('localhost:1')).toBe(true);
    expect(isLoopbackHost('128.0.0.1')).toBe(false);
    expect(isLoopbackHost('localhost.example.com')).toBe(false);
    expect(registryScheme('127.0.0.1:5000')).toBe('http');
    expect(registryScheme('127.0.0.1:5000', { forceHttps: true })).toBe('https');
    expect(registryScheme('reg.lan:5000')).toBe('https');
    expect(registryScheme('reg.lan:5000', { insecure: ['reg.lan:5000'] })).toBe('http');
    expect(registryScheme('reg.lan:5000', { insecure: ['reg.lan'] })).toBe('http');
    expect(registryScheme('reg.lan:5000', { insecure: ['other.lan'] })).toBe('https');
    expect(registryScheme('reg.lan', { insecure: true })).toBe('http');
    expect(registryOrigin('h.io')).toBe('https://h.io');
  });
});
