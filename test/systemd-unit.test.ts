/**
 * packaging/xdplb.service: systemd accepts it (`systemd-analyze verify`, when installed), it has
 * what docs/cluster.md promises (reload by SIGHUP, restart on failure, the capabilities XDP
 * needs, hardening that leaves bpffs and the config directory writable and Node's JIT working),
 * and its ExecStart command line is accepted by the CLI's own argument parser with the
 * intended values (the daemon's action is replaced: nothing starts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CommanderError, type Command } from 'commander';
import { buildProgram } from '../src/cli/program';
import { repoRoot } from './browser/repo-root';

const UNIT = path.join(repoRoot(), 'packaging', 'xdplb.service');

type Unit = Map<string, Map<string, string[]>>;

/**
 * Parses a unit file the way systemd reads one: [Section] headers, Key=Value lines (a key may
 * repeat), `#`/`;` comments, a trailing backslash continues the line.
 * @throws Error naming the line for anything else
 */
export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | null = null;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i].trim();
    const lineNo = i + 1;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i].trim()}`;
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      if (unit.has(header[1])) throw new Error(`line ${lineNo}: section [${header[1]}] repeated`);
      section = new Map();
      unit.set(header[1], section);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`line ${lineNo}: not "Key=Value": ${line}`);
    if (!section) throw new Error(`line ${lineNo}: ${kv[1]} outside any section`);
    section.set(kv[1], [...(section.get(kv[1]) ?? []), kv[2]]);
  }
  return unit;
}

/** Splits an Exec line into argv like systemd (whitespace, "double" and 'single' quotes); refuses $VAR and %-specifiers. */
export function splitExec(line: string): string[] {
  const argv: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    let word = '';
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t') {
      const c = line[i];
      if (c === '"' || c === "'") {
        const end = line.indexOf(c, i + 1);
        if (end < 0) throw new Error(`unterminated ${c} in: ${line}`);
        word += line.slice(i + 1, end);
        i = end + 1;
      } else {
        if (c === '$' || c === '%') throw new Error(`"${c}" expansion in ExecStart is not checked here: ${line}`);
        word += c;
        i++;
      }
    }
    argv.push(word);
  }
  return argv;
}

/** Parses `args` (after "xdplb") with the real CLI; the daemon verb's action only records its flags. */
async function parseDaemonArgs(args: string[]): Promise<Record<string, unknown>> {
  const program = buildProgram();
  const daemon = program.commands.find((c) => c.name() === 'daemon') as Command;
  let flags: Record<string, unknown> | null = null;
  daemon.action((f: Record<string, unknown>) => { flags = f; });
  daemon.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  await program.parseAsync(['node', 'xdplb', ...args]);
  assert.ok(flags, `the daemon verb ran for: ${args.join(' ')}`);
  return flags;
}

const one = (unit: Unit, section: string, key: string): string => {
  const values = unit.get(section)?.get(key);
  assert.ok(values && values.length > 0, `[${section}] ${key} is set`);
  assert.equal(values.length, 1, `[${section}] ${key} is set once`);
  return values[0];
};
const words = (unit: Unit, section: string, key: string): string[] => (unit.get(section)?.get(key) ?? []).flatMap((v) => v.split(/\s+/).filter(Boolean));

describe('packaging/xdplb.service', () => {
  const unit = parseUnit(fs.readFileSync(UNIT, 'utf8'));

  test('parses, with the sections and fields the docs promise', () => {
    assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
    assert.match(one(unit, 'Unit', 'Description'), /xdplb/);
    assert.equal(one(unit, 'Service', 'Type'), 'simple');
    assert.equal(one(unit, 'Service', 'Restart'), 'on-failure');
    assert.deepEqual(splitExec(one(unit, 'Service', 'ExecReload').replace('$MAINPID', 'PID')), ['/bin/kill', '-HUP', 'PID'], 'reload is SIGHUP to the daemon');
    assert.equal(one(unit, 'Install', 'WantedBy'), 'multi-user.target');
    assert.ok(words(unit, 'Unit', 'After').includes('network-online.target'));
  });

  test('capabilities and hardening that still let it load and attach XDP', () => {
    const caps = words(unit, 'Service', 'CapabilityBoundingSet');
    for (const cap of ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_PERFMON', 'CAP_SYS_RESOURCE']) assert.ok(caps.includes(cap), `${cap} in the bounding set`);
    assert.ok(!caps.some((c) => c.startsWith('~')), 'an allow list, not a deny list');
    assert.equal(one(unit, 'Service', 'LimitMEMLOCK'), 'infinity', 'BPF maps on kernels that charge memlock');
    assert.notEqual(unit.get('Service')?.get('MemoryDenyWriteExecute')?.[0], 'yes', "Node's JIT needs W+X pages");
    assert.notEqual(unit.get('Service')?.get('PrivateNetwork')?.[0], 'yes', 'XDP attaches to the host\'s interfaces');
    const families = words(unit, 'Service', 'RestrictAddressFamilies');
    if (families.length) for (const f of ['AF_NETLINK', 'AF_INET', 'AF_UNIX']) assert.ok(families.includes(f), `${f} allowed (netlink: links and XDP; unix: birdc)`);
    const argv = splitExec(one(unit, 'Service', 'ExecStart'));
    const pinDir = argv[argv.indexOf('--pin-dir') + 1];
    const configDir = path.dirname(argv[argv.indexOf('--config') + 1]);
    const writable = words(unit, 'Service', 'ReadWritePaths').map((p) => p.replace(/^-/, ''));
    assert.ok(pinDir.startsWith('/sys/fs/bpf/'), `pins on bpffs: ${pinDir}`);
    if (unit.get('Service')?.get('ProtectKernelTunables')?.[0] === 'yes') assert.ok(writable.some((p) => pinDir.startsWith(p)), 'bpffs writable despite ProtectKernelTunables');
    if (unit.get('Service')?.get('ProtectSystem')?.[0] === 'strict') {
      assert.ok(words(unit, 'Service', 'RuntimeDirectory').includes('xdplb'), '/run/xdplb (BIRD\'s files, the daemon\'s default --bird-dir /run/xdplb/bird) is writable');
    }
    assert.notEqual(unit.get('Service')?.get('KillMode')?.[0], 'process', 'a stop leaves nothing of the unit running');
    if (['strict', 'full', 'yes'].includes(unit.get('Service')?.get('ProtectSystem')?.[0] ?? '')) {
      assert.ok(writable.includes(configDir), `the config directory ${configDir} is writable (API changes rewrite the file beside it)`);
    }
  });

  test('its ExecStart is accepted by the CLI\'s argument parser, with the intended values', async () => {
    const argv = splitExec(one(unit, 'Service', 'ExecStart'));
    assert.equal(path.basename(argv[0]), 'xdplb', 'runs the xdplb command (package.json bin)');
    assert.equal(argv[1], 'daemon');
    const flags = await parseDaemonArgs(argv.slice(1));
    assert.equal(flags.config, '/etc/xdplb/xdplb.yaml');
    assert.equal(flags.pinDir, '/sys/fs/bpf/xdplb');
    assert.equal(flags.detachOnExit, undefined, 'a restart keeps the program forwarding');
    // The same parser refuses a line it does not know: this check can fail.
    await assert.rejects(parseDaemonArgs([...argv.slice(1), '--no-such-flag']), (err: unknown) => err instanceof CommanderError && err.code === 'commander.unknownOption');
    await assert.rejects(parseDaemonArgs(['daemon', '--pin-dir', '/sys/fs/bpf/xdplb']), (err: unknown) => err instanceof CommanderError && err.code === 'commander.missingMandatoryOptionValue');
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  test('systemd-analyze verify accepts it', { skip: analyze.status === 0 ? false : 'systemd-analyze is not installed' }, () => {
    // verify insists that the executable exists: point ExecStart at this checkout's CLI.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbu-unit-'));
    try {
      const cli = path.join(repoRoot(), 'dist', 'src', 'cli.js');
      const text = fs.readFileSync(UNIT, 'utf8').replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath} ${cli}`);
      const file = path.join(dir, 'xdplb.service');
      fs.writeFileSync(file, text);
      const run = (f: string) => spawnSync('systemd-analyze', ['verify', '--man=no', f], { encoding: 'utf8', timeout: 60_000 });
      const ours = (r: ReturnType<typeof run>, f: string) => `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(path.basename(f)) && !/Found documentation item/.test(l));
      const result = run(file);
      assert.equal(result.status, 0, `systemd-analyze verify: ${result.stdout}${result.stderr}`);
      assert.deepEqual(ours(result, file), [], 'no warning about the unit');
      // Control: a misspelt key is reported, so the check above can fail.
      const bad = path.join(dir, 'xdplb-bad.service');
      fs.writeFileSync(bad, text.replace('Restart=on-failure', 'Restart=on-failur'));
      assert.ok(ours(run(bad), bad).some((l) => /on-failur/.test(l)), 'a bad value is reported');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
