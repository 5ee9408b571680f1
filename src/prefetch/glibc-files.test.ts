import { describe, expect, it } from 'vitest';
import { glibcDataFiles, glibcStartFiles, normalizeLocale } from './glibc-files.js';

describe('glibcDataFiles', () => {
  it('names the locale directory by its normalized name, the gconv cache and /etc/localtime', () => {
    const files = glibcDataFiles(['PATH=/usr/bin', 'LANG=C.UTF-8']);
    expect(files.some((f) => f.includes('C.UTF-8'))).toBe(false);
    expect(files[0]).toBe('/usr/lib/locale/C.utf8/LC_CTYPE');
    expect(files).toContain('/usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES');
    expect(files.filter((f) => f.startsWith('/usr/lib/locale/C.utf8/'))).toHaveLength(12);
    expect(files).toContain('/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache');
    expect(files.at(-1)).toBe('/etc/localtime');
    expect(new Set(files).size).toBe(files.length);
  });

  it('fetches no locale for C, POSIX or no locale at all; later entries win; LC_ALL overrides', () => {
    expect(glibcDataFiles([])).toEqual(['/etc/localtime']);
    expect(glibcDataFiles(['LANG=C.UTF-8', 'LANG=C'])).toEqual(['/etc/localtime']);
    expect(glibcDataFiles(['LANG=POSIX'])).toEqual(['/etc/localtime']);
    const all = glibcDataFiles(['LANG=de_DE.UTF-8', 'LC_ALL=fr_FR.utf8']);
    expect(all.some((f) => f.includes('de_DE'))).toBe(false);
    expect(all).toContain('/usr/lib/locale/fr_FR.utf8/LC_TIME');
  });

  it('names each category locale once and at most two locales; never a path outside the locale folder', () => {
    const files = glibcDataFiles(['LANG=en_US.utf8', 'LC_TIME=de_DE.utf8', 'LC_NUMERIC=fr_FR.utf8']);
    const dirs = new Set(files.filter((f) => f.startsWith('/usr/lib/locale/')).map((f) => f.split('/')[4]));
    expect(dirs.size).toBe(2);
    expect(glibcDataFiles(['LANG=../../etc'])).toEqual(['/etc/localtime']);
    expect(glibcDataFiles(['LANG=a/b'])).toEqual(['/etc/localtime']);
  });
});

describe('normalizeLocale', () => {
  it("applies glibc's codeset normalization", () => {
    expect(normalizeLocale('C.UTF-8')).toBe('C.utf8');
    expect(normalizeLocale('en_US.ISO-8859-1')).toBe('en_US.iso88591');
    expect(normalizeLocale('ja_JP.EUC-JP@mod')).toBe('ja_JP.eucjp@mod');
    expect(normalizeLocale('sv_SE.8859-1')).toBe('sv_SE.iso88591');
    expect(normalizeLocale('en_US')).toBe('en_US');
  });
});

describe('glibcStartFiles', () => {
  it("names the loader, its cache and libc of the config's architecture, nothing for others", () => {
    expect(glibcStartFiles('amd64')).toEqual([
      '/lib64/ld-linux-x86-64.so.2',
      '/etc/ld.so.cache',
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
    ]);
    expect(glibcStartFiles('arm64')[0]).toBe('/lib/ld-linux-aarch64.so.1');
    expect(glibcStartFiles('s390x')).toEqual([]);
    expect(glibcStartFiles(undefined)).toEqual([]);
  });
});
