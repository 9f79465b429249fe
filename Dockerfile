# syntax=docker/dockerfile:1
# Build: compile a single `pilotfish` binary with its permissions baked in.
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY src ./src
RUN deno install --frozen && deno task compile \
 && mkdir -p /out/etc/pilotfish /out/var/run/pilotfish

# Run: distroless (glibc, no shell), non-root. ~140 MB binary, nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/pilotfish /usr/local/bin/pilotfish
COPY --from=build --chown=65532:65532 /out/etc/pilotfish /etc/pilotfish
COPY --from=build --chown=65532:65532 /out/var/run/pilotfish /var/run/pilotfish
USER 65532:65532
EXPOSE 9002
# In a pod, share /var/run/pilotfish with the app container (emptyDir) for the socket, and
# mount the config at /etc/pilotfish/config.yaml. 0.0.0.0 so `docker run -p` works; inside a
# pod use --host 127.0.0.1 (the pod shares localhost).
ENTRYPOINT ["/usr/local/bin/pilotfish"]
CMD ["--host", "0.0.0.0", "--socket", "/var/run/pilotfish/pilotfish.sock"]
