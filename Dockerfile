# One image for the log (vigil-server), the witness (vigil-witness) and the client CLI (vigil).
# Build: docker build -t vigil:local .   (docker-compose.yml does this). Node LTS, non-root, no dev tools
# in the final stage.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Manifests first so the dependency layer is cached across source changes.
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
COPY client-lib/package.json client-lib/
COPY server/package.json server/
COPY witness/package.json witness/
COPY console/package.json console/
COPY test/package.json test/
RUN npm ci --ignore-scripts
COPY client-lib client-lib
COPY server server
COPY witness witness
COPY migrations migrations
COPY console console
RUN npx tsc -b client-lib migrations server witness console \
  && node console/build.mjs \
  && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/client-lib/package.json client-lib/
COPY --from=build /app/client-lib/bin client-lib/bin
COPY --from=build /app/client-lib/dist client-lib/dist
COPY --from=build /app/server/package.json server/
COPY --from=build /app/server/bin server/bin
COPY --from=build /app/server/dist server/dist
COPY --from=build /app/console/package.json console/
COPY --from=build /app/console/dist console/dist
COPY --from=build /app/witness/package.json witness/
COPY --from=build /app/witness/bin witness/bin
COPY --from=build /app/witness/dist witness/dist
COPY --from=build /app/migrations/dist migrations/dist
RUN ln -s /app/server/bin/vigil-server.js /usr/local/bin/vigil-server \
  && ln -s /app/witness/bin/vigil-witness.js /usr/local/bin/vigil-witness \
  && ln -s /app/client-lib/bin/vigil.js /usr/local/bin/vigil \
  && chmod 755 server/bin/vigil-server.js witness/bin/vigil-witness.js client-lib/bin/vigil.js \
  && mkdir /data /public && chown node:node /data /public
# Keys are written 0600 by the CLIs; the umask keeps everything else in the data volume private too.
USER node
VOLUME ["/data"]
# The log listens on 8080, the witnesses on 8081 and 8082 (docker-compose.yml).
EXPOSE 8080 8081 8082
CMD ["vigil-server", "serve"]
