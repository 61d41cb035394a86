// docker-compose.yml and Dockerfile cannot run here (no Docker), so this test holds them to the code:
// every vigil-server / vigil-witness command, subcommand and flag they name is one the CLIs accept;
// every environment variable is a setting of that service's config (and the values parse); ports,
// health checks, volumes and start-up order fit together; the Dockerfile copies paths that exist and
// links the bins the packages declare.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig as loadWitnessConfig } from '@vigil/witness';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (p: string) => fs.readFileSync(path.join(root, p), 'utf8');
const CLI = {
  'vigil-server': path.join(root, 'server/dist/src/main.js'),
  'vigil-witness': path.join(root, 'witness/dist/src/main.js'),
} as const;
type CliName = keyof typeof CLI;

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  command?: string[] | string;
  entrypoint?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

/** Compose interpolation with defaults only (`${X:-d}` -> d, `$$` -> `$`), as with an empty .env. */
function interpolate(s: string): string {
  return s
    .replace(/\$\{([A-Z0-9_]+):-([^}]*)\}/g, (_m, _name: string, def: string) => def)
    .replace(/\$\$/g, '$');
}

const kindOf = (name: string): CliName | undefined =>
  name.startsWith('log') ? 'vigil-server' : name.startsWith('witness') ? 'vigil-witness' : undefined;

/** Every CLI invocation in a service: `[cli, ...words]`, from exec-form commands and sh -c scripts. */
function invocations(service: Service): { cli: CliName; words: string[] }[] {
  const argv = [...(service.entrypoint ?? []), ...(Array.isArray(service.command) ? service.command : [])];
  if (argv[0] === 'sh') {
    const script = interpolate(argv[argv.length - 1] ?? '');
    const out: { cli: CliName; words: string[] }[] = [];
    for (const m of script.matchAll(
      /(vigil-server|vigil-witness)((?:[ \t]+(?:"[^"]*"|'[^']*'|[^\s|;&>)]+))*)/g,
    )) {
      const words = [...(m[2] ?? '').matchAll(/"[^"]*"|'[^']*'|[^\s]+/g)].map((w) => w[0]);
      out.push({ cli: m[1] as CliName, words });
    }
    return out;
  }
  if (argv[0] === 'vigil-server' || argv[0] === 'vigil-witness') {
    return [{ cli: argv[0], words: argv.slice(1).map(interpolate) }];
  }
  return [];
}

function help(cli: CliName): string {
  const r = spawnSync(process.execPath, [CLI[cli], cli === 'vigil-server' ? 'help' : '--help'], {
    encoding: 'utf8',
  });
  return `${r.stdout}${r.stderr}`;
}
const usage = { 'vigil-server': help('vigil-server'), 'vigil-witness': help('vigil-witness') };

/** The env names a service's config reads (`env: 'NAME'` rows of its config.ts settings table). */
function settingNames(cli: CliName): Set<string> {
  const source = read(cli === 'vigil-server' ? 'server/src/config.ts' : 'witness/src/config.ts');
  return new Set([...source.matchAll(/env: '([A-Z0-9_]+)'/g)].map((m) => m[1]!));
}

/**
 * Variables of services that run the official postgres image: the server's own
 * (hub.docker.com/_/postgres "Environment Variables"), libpq's for psql, and the log role's password.
 */
const POSTGRES_ENV = new Set([
  'POSTGRES_USER',
  'POSTGRES_PASSWORD',
  'POSTGRES_DB',
  'PGHOST',
  'PGUSER',
  'PGPASSWORD',
  'PGDATABASE',
  'VIGIL_LOG_DB_PASSWORD',
]);
const isPostgresImage = (s: Service | undefined) => s?.image?.startsWith('postgres:') ?? false;

t.test('the expected services exist, with health checks on the long-running ones', async (t) => {
  for (const name of ['postgres', 'log-init', 'log', 'witness1', 'witness2'])
    t.ok(services[name], `service ${name}`);
  for (const name of ['postgres', 'log', 'witness1', 'witness2']) {
    t.ok(services[name]?.healthcheck?.test.length, `${name} has a health check`);
  }
});

t.test('every vigil command, subcommand and flag exists in the CLIs', async (t) => {
  let count = 0;
  for (const [name, service] of Object.entries(services)) {
    for (const { cli, words } of invocations(service)) {
      count++;
      const positional = words.filter((w) => !w.startsWith('--'));
      const sub = positional[0];
      t.ok(sub !== undefined, `${name}: ${cli} has a subcommand`);
      if (sub === undefined) continue;
      t.match(usage[cli], new RegExp(`^\\s*${sub}\\b`, 'm'), `${name}: \`${cli} ${sub}\` is in its usage`);
      if (['emitter', 'witness', 'log'].includes(sub)) {
        const second = positional[1] ?? '';
        t.match(
          usage[cli],
          new RegExp(`\\b${sub} ${second}\\b`),
          `${name}: \`${cli} ${sub} ${second}\` exists`,
        );
      }
      for (const flag of words.filter((w) => w.startsWith('--'))) {
        // A flag is real if the usage names it or the CLI's strict argument parser accepts it.
        const named = usage[cli].includes(flag);
        const accepted =
          named ||
          spawnSync(process.execPath, [CLI[cli], '--help', flag, 'x'], { encoding: 'utf8' }).status === 0;
        t.ok(accepted, `${name}: ${cli} accepts ${flag}`);
      }
    }
  }
  t.ok(count >= 10, `found ${count} CLI invocations`);
});

t.test('every environment variable is a setting of its service, and the values parse', async (t) => {
  for (const [name, service] of Object.entries(services)) {
    const env = Object.fromEntries(
      Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]),
    );
    const kind = kindOf(name);
    if (isPostgresImage(service)) {
      for (const k of Object.keys(env))
        t.ok(POSTGRES_ENV.has(k), `${name}: ${k} is a postgres image variable`);
      continue;
    }
    t.ok(kind, `${name} is a log or witness service`);
    if (kind === undefined) continue;
    const known = settingNames(kind);
    for (const k of Object.keys(env)) t.ok(known.has(k), `${name}: ${k} is a ${kind} setting`);
    if (kind === 'vigil-witness') {
      t.doesNotThrow(() => loadWitnessConfig(env), `${name}: the witness config accepts these values`);
    } else {
      const { loadConfig } = (await import(
        new URL('../../../server/dist/src/config.js', import.meta.url).href
      )) as { loadConfig: (env: Record<string, string>) => unknown };
      t.doesNotThrow(() => loadConfig(env), `${name}: the server config accepts these values`);
      const url = new URL(env.DATABASE_URL ?? '');
      t.ok(services[url.hostname], `${name}: DATABASE_URL names the ${url.hostname} service`);
    }
  }
});

t.test('ports, health checks and the witnesses pull URL agree', async (t) => {
  const defaults: Record<string, string> = { log: '8080', witness1: '8081', witness2: '8082' };
  for (const [name, port] of Object.entries(defaults)) {
    const s = services[name]!;
    t.equal(s.environment?.PORT, port, `${name} listens on ${port}`);
    t.equal(s.environment?.HOST, '0.0.0.0', `${name} listens on all interfaces inside its container`);
    t.ok(
      s.ports?.some((p) => p.endsWith(`:${port}`)),
      `${name} publishes container port ${port}`,
    );
    t.match(
      s.healthcheck?.test.join(' ') ?? '',
      `127.0.0.1:${port}/healthz`,
      `${name} health check probes its port`,
    );
  }
  for (const w of ['witness1-init', 'witness2-init']) {
    const add = invocations(services[w]!).find((i) => i.words[0] === 'log' && i.words[1] === 'add');
    t.ok(add, `${w} registers the log`);
    const url = add?.words[add.words.indexOf('--url') + 1] ?? '';
    t.equal(url, `http://log:${defaults.log}/`, `${w} pulls from the log service's port`);
  }
});

t.test('volumes: each witness has its own store, and keys stay in their volume', async (t) => {
  const dataVolume = (name: string) =>
    services[name]?.volumes?.find((v) => v.endsWith(':/data'))?.split(':')[0];
  const log = dataVolume('log');
  const w1 = dataVolume('witness1');
  const w2 = dataVolume('witness2');
  t.ok(log && w1 && w2, 'log and witnesses have data volumes');
  t.equal(new Set([log, w1, w2]).size, 3, 'three distinct data volumes');
  t.equal(dataVolume('witness1-init'), w1, 'witness1-init writes into witness1 volume');
  t.equal(dataVolume('witness2-init'), w2, 'witness2-init writes into witness2 volume');
  t.equal(dataVolume('log-init'), log, 'log-init writes into the log volume');
  for (const [name, s] of Object.entries(services)) {
    for (const v of s.volumes ?? []) {
      const volume = v.split(':')[0]!;
      t.ok(compose.volumes[volume] !== undefined, `${name}: volume ${volume} is declared`);
      if (volume === 'public') {
        // The shared volume carries public keys only: nothing copies a .key file into it.
        const script = Array.isArray(s.command) ? s.command.join(' ') : '';
        t.notMatch(script, /\/public\/[^\s]*\.key\b/, `${name}: no private key goes to the public volume`);
      }
    }
  }
});

t.test('start-up order: migrate and init before serve; depends_on names real services', async (t) => {
  for (const [name, s] of Object.entries(services)) {
    for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
      t.ok(services[dep], `${name} depends on existing service ${dep}`);
      t.ok(['service_healthy', 'service_completed_successfully', 'service_started'].includes(condition));
    }
  }
  const init = invocations(services['log-init']!).map((i) => i.words[0]);
  t.ok(
    init.indexOf('migrate') >= 0 && init.indexOf('migrate') < init.indexOf('init'),
    'log-init migrates, then inits',
  );
  t.same(
    invocations(services.log!).map((i) => i.words[0]),
    ['serve'],
    'the log only serves',
  );
  // log <- log-witnesses <- witness inits <- log-init <- postgres
  const chain = (name: string): string[] =>
    Object.keys(services[name]?.depends_on ?? {}).flatMap((d) => [d, ...chain(d)]);
  t.ok(
    chain('log').includes('log-init') && chain('log').includes('postgres'),
    'the log starts after log-init and postgres',
  );
  t.ok(
    chain('witness1').includes('witness1-init') || chain('witness1').includes('log'),
    'witness1 starts after its init',
  );
});

t.test('the Dockerfile copies paths that exist and links the declared bins', async (t) => {
  const dockerfile = read('Dockerfile');
  for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)) {
    const parts = m[1]!.trim().split(/\s+/);
    for (const src of parts.slice(0, -1))
      t.ok(fs.existsSync(path.join(root, src)), `COPY source ${src} exists`);
  }
  const bins: Record<string, string> = {};
  for (const ws of ['client-lib', 'server', 'witness']) {
    const pkg = JSON.parse(read(`${ws}/package.json`)) as { bin?: Record<string, string> };
    for (const [bin, file] of Object.entries(pkg.bin ?? {})) bins[bin] = path.posix.join('/app', ws, file);
  }
  for (const m of dockerfile.matchAll(/ln -s (\S+) \/usr\/local\/bin\/(\S+)/g)) {
    t.equal(m[1], bins[m[2]!], `${m[2]} links the package's bin`);
  }
  t.same(Object.keys(bins).sort(), ['vigil', 'vigil-server', 'vigil-witness'], 'all three CLIs are declared');
  t.match(dockerfile, /^USER node$/m, 'the image runs as a non-root user');
  const ignore = read('.dockerignore');
  t.match(ignore, /\*\*\/\*\.key/, '.dockerignore keeps key files out of the build context');
});

const databaseUser = (name: string): string | undefined => {
  const url = services[name]?.environment?.DATABASE_URL;
  return url === undefined ? undefined : decodeURIComponent(new URL(interpolate(url)).username);
};

t.test('the log serves as a login role with the service grants; migrations run as the owner', async (t) => {
  const superuser = services.postgres?.environment?.POSTGRES_USER;
  t.ok(superuser, 'the postgres service names its superuser');
  t.equal(databaseUser('log-init'), superuser, 'log-init migrates as the owner');
  const role = databaseUser('log');
  t.ok(role, 'the log has a DATABASE_URL');
  t.not(role, superuser, 'the log does not connect as the superuser');
  // The role is created by a postgres-image service, as a login member of vigil_service only.
  const creator = Object.entries(services).find(
    ([, s]) => isPostgresImage(s) && Array.isArray(s.command) && s.command.join(' ').includes(`role ${role}`),
  );
  t.ok(creator, `a service creates the role ${role}`);
  const script = interpolate((creator?.[1].command as string[] | undefined)?.join(' ') ?? '');
  t.match(
    script,
    new RegExp(`create role ${role} login in role vigil_service\\b`),
    'a login member of vigil_service',
  );
  t.notMatch(script, /superuser|createrole|createdb|bypassrls/i, 'with no other attribute');
  t.equal(creator?.[1].environment?.PGUSER, superuser, 'the role is created by the owner');
  t.ok(creator && services.log?.depends_on?.[creator[0]], 'the log starts after its role exists');
  const migrations = fs
    .readdirSync(path.join(root, 'migrations/log'))
    .map((f) => read(`migrations/log/${f}`))
    .join('\n');
  t.match(migrations, /create role vigil_service nologin/, 'the migrations create vigil_service');
  const appendOnly = /const APPEND_ONLY = \[([^\]]*)\]/.exec(migrations)?.[1] ?? '';
  for (const table of ['entries', 'checkpoints', 'cosignatures', 'blobs'])
    t.match(appendOnly, `'${table}'`, `${table} is append-only, granted SELECT and INSERT only`);
  t.match(migrations, /grant select, insert on \$\{APPEND_ONLY\.join\(', '\)\} to vigil_service/);
  t.match(migrations, /grant select on kysely_migration, kysely_migration_lock to vigil_service/);
  for (const name of ['witness1', 'witness2', 'witness1-init', 'witness2-init']) {
    const user = databaseUser(name);
    t.ok(user === undefined || user !== superuser, `${name} does not connect as the superuser`);
  }
});

t.test('the Dockerfile EXPOSEs exactly the container ports compose publishes', async (t) => {
  const exposed = new Set(
    [...read('Dockerfile').matchAll(/^EXPOSE (.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/)),
  );
  const published = new Set(
    Object.entries(services)
      .filter(([, s]) => s.image === 'vigil:local')
      .flatMap(([, s]) => (s.ports ?? []).map((p) => p.split(':').pop()!)),
  );
  t.ok(published.size >= 3, 'the log and two witnesses publish ports');
  t.same([...exposed].sort(), [...published].sort());
});

t.test('export and import exist in both CLIs', async (t) => {
  for (const cli of ['vigil-server', 'vigil-witness'] as const)
    for (const sub of ['export', 'import'])
      t.match(usage[cli], new RegExp(`^\\s*${sub} <dir>`, 'm'), `${cli} ${sub} <dir>`);
});
