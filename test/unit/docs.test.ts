/**
 * The documentation: README.md (the landing page), docs/*.md (one file per reader) and the READMEs beside the
 * code they describe.
 * - Every relative link resolves to a file inside the repository, and every `#anchor` to a heading of the file it
 *   names (GitHub's heading ids); no document names a file outside the repository (`../shared/...`, `/work/...`).
 * - Release file names (`pos-token-agent_X.Y.Z_arch.deb`, `pos-token-agent-X.Y.Z-linux-arch.tar.gz`, ...) carry
 *   package.json's version, or are written with `<version>`. The one exception is docs/changelog.md, where a
 *   version's own section (`## X.Y.Z`) may name that version's files. The changelog's newest section is
 *   package.json's version.
 * - Each document under docs/ opens with its title, a purpose and a contents list linking each of its `##`
 *   sections; the README's "Where to go next" links every one of them, and its quick start is the two commands.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const REPO = resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const DOCS = readdirSync(join(REPO, 'docs')).filter((n) => n.endsWith('.md')).sort().map((n) => `docs/${n}`);
const FILES = ['README.md', ...DOCS, 'bench/README.md', 'device-profiles/README.md'];

const read = (file: string): string => readFileSync(join(REPO, file), 'utf8');

interface Line {
  text: string;
  /** 1-based. */
  number: number;
}

/** The lines outside fenced code blocks: what markdown renders as prose, headings and links. */
function prose(text: string): Line[] {
  const out: Line[] = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === undefined) fence = m[1]![0]!.repeat(m[1]!.length);
      else if (m[1]!.startsWith(fence)) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ text: line, number: i + 1 });
  });
  return out;
}

/** Heading text as it renders: links reduced to their text, code spans and emphasis to their content. */
function rendered(text: string): string {
  return text
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/(\*\*|__|\*)(.+?)\1/g, '$2');
}

/** GitHub's heading id (github-slugger): lower case, punctuation and symbols removed, each space a hyphen. */
function slug(heading: string): string {
  return rendered(heading)
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

interface Heading {
  level: number;
  text: string;
  id: string;
}

function headings(text: string): Heading[] {
  const seen = new Map<string, number>();
  const out: Heading[] = [];
  for (const { text: line } of prose(text)) {
    const m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[2]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.push({ level: m[1]!.length, text: m[2]!, id: n === 0 ? base : `${base}-${n}` });
  }
  return out;
}

interface Link {
  target: string;
  line: number;
}

/** Inline links `[text](target)` outside code blocks and code spans. */
function links(text: string): Link[] {
  const out: Link[] = [];
  for (const { text: line, number } of prose(text)) {
    const bare = line.replace(/`[^`]*`/g, '');
    for (const m of bare.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1]!, line: number });
  }
  return out;
}

const external = (target: string): boolean => /^[a-z][a-z0-9+.-]*:/i.test(target);

/** What is wrong with one link of `file`, or undefined. */
function linkProblem(file: string, target: string): string | undefined {
  if (external(target)) return undefined;
  const hash = target.indexOf('#');
  const path = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
  const anchor = hash < 0 ? undefined : target.slice(hash + 1);
  if (isAbsolute(path)) return `${target}: an absolute path (link relative to the document, inside the repository)`;
  const abs = path === '' ? join(REPO, file) : resolve(dirname(join(REPO, file)), path);
  const rel = relative(REPO, abs);
  if (rel.startsWith('..') || isAbsolute(rel)) return `${target}: outside the repository`;
  if (!existsSync(abs)) return `${target}: no such file (${rel})`;
  if (anchor === undefined) return undefined;
  if (statSync(abs).isDirectory() || !abs.endsWith('.md')) return `${target}: an anchor into ${rel}, which is not a markdown file`;
  const ids = headings(readFileSync(abs, 'utf8')).map((h) => h.id);
  if (!ids.includes(anchor)) return `${target}: ${rel} has no heading #${anchor}`;
  return undefined;
}

/** The version of the changelog section each line is in (`## X.Y.Z`), by line number. */
function changelogSections(text: string): Array<string | undefined> {
  let current: string | undefined;
  return text.split('\n').map((line) => {
    const m = /^## (\d+\.\d+\.\d+)\s*$/.exec(line);
    if (m) current = m[1];
    else if (/^#{1,2} /.test(line)) current = undefined;
    return current;
  });
}

/** Release file names in `text` whose version is not package.json's (nor, in the changelog, their section's). */
function staleFileNames(file: string, text: string): string[] {
  const sections = file === 'docs/changelog.md' ? changelogSections(text) : [];
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    for (const m of line.matchAll(/pos-token-agent[_-](\d+\.\d+\.\d+)/g)) {
      if (m[1] === VERSION || m[1] === sections[i]) continue;
      out.push(`${file}:${i + 1}: ${m[0]} (package.json says ${VERSION}; write pos-token-agent${m[0][15]}${VERSION} or <version>)`);
    }
  });
  return out;
}

describe('docs: the rules, on samples', () => {
  it('heading ids are GitHub\'s', () => {
    assert.equal(slug('The key as a systemd credential (optional)'), 'the-key-as-a-systemd-credential-optional');
    assert.equal(slug('OAuth 2.0: client authentication, Basic encodings and refusals'), 'oauth-20-client-authentication-basic-encodings-and-refusals');
    assert.equal(slug('The serial protocol of `serial-fiscal-module`'), 'the-serial-protocol-of-serial-fiscal-module');
    assert.equal(slug('Install scripts (allowScripts)'), 'install-scripts-allowscripts');
    assert.equal(slug('0.5.0'), '050');
    assert.deepEqual(headings('## A\n```sh\n# not a heading\n```\n## A\n').map((h) => h.id), ['a', 'a-1']);
  });

  it('links: code is not a link; a missing file, a missing heading and a way out of the repository are found', () => {
    assert.deepEqual(links('[a](b.md) `[c](d.md)`\n```\n[e](f.md)\n```\n[g](#h "title")').map((l) => l.target), ['b.md', '#h']);
    assert.equal(linkProblem('README.md', 'https://example.com/x'), undefined);
    assert.equal(linkProblem('README.md', 'docs/technicians.md#install-on-a-box-or-upgrade'), undefined);
    assert.match(linkProblem('README.md', 'docs/nothing.md') ?? '', /no such file/);
    assert.match(linkProblem('README.md', 'docs/technicians.md#no-such-heading') ?? '', /has no heading #no-such-heading/);
    assert.match(linkProblem('docs/changelog.md', '../../shared/interface.md') ?? '', /outside the repository/);
    assert.match(linkProblem('docs/changelog.md', '/work/shared/interface.md') ?? '', /absolute path/);
  });

  it('file names: another version is stale, except in the changelog section of that version', () => {
    const old = VERSION === '0.0.1' ? '0.0.2' : '0.0.1';
    assert.deepEqual(staleFileNames('README.md', `apt install ./pos-token-agent_${VERSION}_arm64.deb pos-token-agent_<version>_amd64.deb`), []);
    assert.equal(staleFileNames('docs/technicians.md', `tar xzf pos-token-agent-${old}-linux-arm64.tar.gz`).length, 1);
    assert.equal(staleFileNames('docs/changelog.md', `# Changelog\n\n## ${old}\n\npos-token-agent_${old}_amd64.deb\n`).length, 0);
    assert.equal(staleFileNames('docs/changelog.md', `# Changelog\n\n## ${VERSION}\n\npos-token-agent_${old}_amd64.deb\n`).length, 1);
  });
});

describe('docs: README.md and docs/*.md', () => {
  it('every relative link and #anchor resolves, inside the repository', () => {
    const problems: string[] = [];
    for (const file of FILES) {
      for (const l of links(read(file))) {
        const p = linkProblem(file, l.target);
        if (p) problems.push(`${file}:${l.line}: ${p}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('no document names a file outside the repository', () => {
    const problems: string[] = [];
    for (const file of FILES) {
      read(file).split('\n').forEach((line, i) => {
        for (const m of line.matchAll(/\.\.\/shared\/|\/work\//g)) problems.push(`${file}:${i + 1}: ${m[0]} in ${line.trim().slice(0, 80)}`);
      });
    }
    assert.deepEqual(problems, []);
  });

  it(`release file names carry package.json's version (${VERSION}) or <version>`, () => {
    assert.deepEqual(FILES.flatMap((file) => staleFileNames(file, read(file))), []);
  });

  it('the changelog\'s newest section is package.json\'s version', () => {
    const versions = headings(read('docs/changelog.md')).filter((h) => h.level === 2).map((h) => h.text);
    assert.equal(versions[0], VERSION, `docs/changelog.md starts with ${versions[0]}: add a section for ${VERSION}`);
    for (const v of versions) assert.match(v, /^\d+\.\d+\.\d+$/, `a changelog section is a version: ${v}`);
  });

  for (const file of DOCS) {
    it(`${file} opens with its title, a purpose and contents linking each of its sections`, () => {
      const text = read(file);
      const [title, blank, purpose] = text.split('\n');
      assert.match(title ?? '', /^# \S/, 'the title');
      assert.equal(blank, '');
      assert.ok(purpose && !purpose.startsWith('#') && !/^contents/i.test(purpose), 'a purpose after the title');
      const at = text.search(/^Contents:/m);
      assert.ok(at >= 0, 'a "Contents:" list');
      const firstSection = text.search(/^## /m);
      assert.ok(firstSection < 0 || at < firstSection, 'the contents come before the first section');
      const contents = links(text.slice(at, firstSection < 0 ? undefined : firstSection)).map((l) => l.target);
      const sections = headings(text).filter((h) => h.level === 2);
      assert.ok(sections.length > 0, 'sections');
      const missing = sections.filter((h) => !contents.includes(`#${h.id}`)).map((h) => h.text);
      assert.deepEqual(missing, [], 'sections missing from the contents');
    });
  }

  it('README.md: the two set-up commands, and "Where to go next" links every document under docs/', () => {
    const readme = read('README.md');
    const quick = /^## Quick start[^\n]*\n+```sh\n([\s\S]*?)\n```/m.exec(readme);
    assert.ok(quick, 'a "Quick start" with a sh block');
    const commands = quick[1]!.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
    assert.deepEqual(commands, ['npm ci && npm run demo', 'npm test']);
    const at = readme.indexOf('## Where to go next');
    assert.ok(at >= 0, 'a "Where to go next" section');
    const next = links(readme.slice(at)).map((l) => l.target);
    assert.deepEqual(DOCS.filter((d) => !next.includes(d)), [], 'documents the README does not point to');
  });
});
