// The data files glibc reads at a program's start, named from the container's environment, for the
// launch-file prefetch (launch-files.ts): a program that calls setlocale(LC_ALL, "") (cat, python,
// bash, …) under a locale such as LANG=C.UTF-8 opens that locale's LC_* files and the gconv module
// cache one after another, each a dependent round trip to the registry on a cold start (4 of the 5
// round trips after libc in `cat /etc/os-release`, bench/coldstart at 50 ms RTT); localtime() reads
// /etc/localtime. Pure and without imports: the `dadi run` client computes this list, and the
// snapshotter's pull from the image's config, with the loader and libc (glibcStartFiles).

/** The categories glibc loads for setlocale(LC_ALL, ""), as files of a locale directory (LC_CTYPE, the largest, first). */
const CATEGORY_FILES = [
  'LC_CTYPE',
  'LC_NUMERIC',
  'LC_TIME',
  'LC_COLLATE',
  'LC_MONETARY',
  'LC_MESSAGES/SYS_LC_MESSAGES',
  'LC_PAPER',
  'LC_NAME',
  'LC_ADDRESS',
  'LC_TELEPHONE',
  'LC_MEASUREMENT',
  'LC_IDENTIFICATION',
];
const CATEGORY_VARS = CATEGORY_FILES.map((f) => f.split('/')[0]!);
/** Where glibc looks for compiled locales and its gconv module cache (Debian's multiarch paths first). */
const LOCALE_DIR = '/usr/lib/locale';
const GCONV_CACHES = [
  '/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache',
  '/usr/lib/aarch64-linux-gnu/gconv/gconv-modules.cache',
  '/usr/lib64/gconv/gconv-modules.cache',
];
/** Locale names glibc builds in (no files). */
const BUILTIN = new Set(['', 'C', 'POSIX']);
/** Locales named at most (each a directory of 12 files). */
const MAX_LOCALES = 2;

/**
 * The files glibc reads at start-up under `env` (KEY=value list, later entries win): the locale
 * directories of the locales it names (by glibc's normalized codeset, e.g. C.UTF-8 → C.utf8), the
 * gconv module cache when a locale is named, and /etc/localtime. Paths that
 * do not exist in the image are skipped by the prefetch; a locale-archive is not fetched (it can
 * hold every locale: too big to fetch blind).
 */
export function glibcDataFiles(env: readonly string[]): string[] {
  const vars = new Map<string, string>();
  for (const e of env) {
    const eq = e.indexOf('=');
    if (eq > 0) vars.set(e.slice(0, eq), e.slice(eq + 1));
  }
  // glibc: LC_ALL wins for every category; else each category's own variable; else LANG.
  const all = vars.get('LC_ALL');
  const names = all ? [all] : CATEGORY_VARS.map((c) => vars.get(c) || vars.get('LANG') || '');
  const locales = [...new Set(names)].filter((n) => !BUILTIN.has(n) && isPlainName(n)).slice(0, MAX_LOCALES);
  const files: string[] = [];
  // Only the normalized name: localedef names the folders so (C.utf8, en_US.utf8), and each lookup
  // of a path the image lacks costs the daemon's thread about as much as one it has.
  for (const dir of new Set(locales.map(normalizeLocale))) {
    for (const f of CATEGORY_FILES) files.push(`${LOCALE_DIR}/${dir}/${f}`);
  }
  if (locales.length) files.push(...GCONV_CACHES);
  files.push('/etc/localtime');
  return files;
}

/** The dynamic loader (its ABI path) and libc by OCI architecture, glibc's multiarch names. */
const START_FILES: Record<string, { triplet: string; loader: string }> = {
  amd64: { triplet: 'x86_64-linux-gnu', loader: '/lib64/ld-linux-x86-64.so.2' },
  arm64: { triplet: 'aarch64-linux-gnu', loader: '/lib/ld-linux-aarch64.so.1' },
};

/**
 * What every dynamically linked glibc program of `architecture` (an OCI config's) loads before its
 * own code runs, whatever the program: the loader, its cache and libc. For a start whose command
 * is not known (the snapshotter: `ctr run` names it). None for an architecture not listed.
 */
export function glibcStartFiles(architecture: string | undefined): string[] {
  const a = START_FILES[architecture ?? ''];
  if (!a) return [];
  return [a.loader, '/etc/ld.so.cache', `/lib/${a.triplet}/libc.so.6`, `/usr/lib/${a.triplet}/libc.so.6`];
}

/** A locale name glibc would look up as a directory (no path of its own). */
function isPlainName(name: string): boolean {
  return name.length <= 255 && !name.includes('/') && name !== '.' && name !== '..';
}

/**
 * glibc's _nl_normalize_codeset applied to `lang[_territory][.codeset][@modifier]`: the codeset
 * keeps only letters (lowercased) and digits, prefixed "iso" when it is all digits.
 */
export function normalizeLocale(name: string): string {
  const at = name.indexOf('@');
  const modifier = at < 0 ? '' : name.slice(at);
  const base = at < 0 ? name : name.slice(0, at);
  const dot = base.indexOf('.');
  if (dot < 0) return name;
  const codeset = base
    .slice(dot + 1)
    .replace(/[^A-Za-z0-9]/g, '')
    .toLowerCase();
  if (!codeset) return name;
  return `${base.slice(0, dot)}.${/^[0-9]+$/.test(codeset) ? `iso${codeset}` : codeset}${modifier}`;
}
