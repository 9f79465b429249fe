# syntax=docker/dockerfile:1
# Pilotfish sidecar image: one compiled `pilotfish` binary on distroless, non-root.
#
# Stage 1 compiles with the permissions baked in by `deno task compile` (deno.json): net and
# env (provider hosts and ${VARS} come from the config), read of the config directory, the
# socket directory, /tmp, ~/.aws of user 65532, the EKS web identity token directory and
# /dev/null (a WASI plugin's discarded output),
# write of the socket directory and /tmp. Never run, ffi or sys. At start the daemon gives
# back every one of those its config does not need (src/permissions/narrow.ts).
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY src ./src
RUN deno install --frozen && deno task compile \
 && mkdir -p /out/etc/pilotfish /out/var/run/pilotfish /out/var/lib/pilotfish /out/home/nonroot/.aws

# Stage 2: distroless (glibc, no shell, no package manager), user 65532 "nonroot".
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/pilotfish /usr/local/bin/pilotfish
COPY --from=build --chown=65532:65532 /out/etc/pilotfish /etc/pilotfish
COPY --from=build --chown=65532:65532 /out/var/run/pilotfish /var/run/pilotfish
COPY --from=build --chown=65532:65532 /out/var/lib/pilotfish /var/lib/pilotfish
COPY --from=build --chown=65532:65532 /out/home/nonroot/.aws /home/nonroot/.aws
USER 65532:65532
ENV HOME=/home/nonroot
# Relative paths in a config (a state file, plugins) resolve here: a directory the baked
# grants let the daemon read and write (distroless would otherwise start in /home/nonroot).
WORKDIR /var/run/pilotfish
EXPOSE 9002
# Config: mount it at /etc/pilotfish/pilotfish.yaml and pass `--config` (or set
# PILOTFISH_CONFIG); without one the embedded default runs. Socket: share /var/run/pilotfish
# with the app container (an emptyDir). Bedrock signing credentials: env, a credentials file
# at /home/nonroot/.aws/credentials (or AWS_SHARED_CREDENTIALS_FILE under /etc/pilotfish), or
# IRSA (AWS_WEB_IDENTITY_TOKEN_FILE under /var/run/secrets/eks.amazonaws.com/serviceaccount).
# No --host: the TCP port is where the config puts it (127.0.0.1 by default; a flag would
# override the file). To try the image with `docker run -p`, pass --host 0.0.0.0 and --socket.
ENTRYPOINT ["/usr/local/bin/pilotfish"]
CMD ["--socket", "/var/run/pilotfish/pilotfish.sock"]
# No shell in the image: the probe mode of the same binary (exit 0 when /ready answers 200).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD ["/usr/local/bin/pilotfish", "--probe", "--socket", "/var/run/pilotfish/pilotfish.sock"]
