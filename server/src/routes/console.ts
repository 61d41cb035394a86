/**
 * `/console/`: the web console's three files (DESIGN.md "The console"), from the installed
 * `@vigil/console` package, under a strict Content-Security-Policy. A fixed set of names read once at
 * start: no path under /console/ reaches the file system. The console then talks to this log's API
 * at the same origin; no CORS is needed or added.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CONSOLE_HEADERS, loadConsoleFiles, type ConsoleFile } from '@vigil/client/node';
import { HttpError } from '../plugins/errors.js';

export async function consoleRoutes(app: FastifyInstance, dir?: string): Promise<void> {
  let files: Map<string, ConsoleFile> | undefined;
  let why = '';
  try {
    files = await loadConsoleFiles(dir);
  } catch (err) {
    why = (err as Error).message;
    app.log.warn(`not serving /console/: ${why}`);
  }
  app.get('/console', async (_request, reply) => reply.redirect('/console/', 301));
  const serve = async (name: string, reply: FastifyReply) => {
    if (files === undefined) throw new HttpError('CONSOLE_NOT_BUILT', why);
    const file = files.get(name);
    if (file === undefined) throw new HttpError('NOT_FOUND', `no console file ${name}`);
    return reply.headers(CONSOLE_HEADERS).type(file.type).send(file.body);
  };
  app.get('/console/', async (_request, reply) => serve('', reply));
  app.get<{ Params: { name: string } }>('/console/:name', async (request, reply) =>
    serve(request.params.name, reply),
  );
}
