# Container image of the coworking analytics gateway.
#
#   docker build \
#     --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_URL=https://example.com/coworking-gateway \
#     -t coworking-gateway:local .
#
# CodeBuild runs exactly this build (see buildspec.yml); there is no Docker
# engine on the development machines, where hadolint and checkov check it.

# Builder: the toolchain the project is developed with (rustc 1.95.0), pinned
# to an exact tag, on Debian 12 "bookworm", the release the runtime image is
# built from, so the binary links against the same glibc it runs with.
# GraphiQL's release files (the IDE on GET /graphql): npm ci installs exactly
# what assets/graphiql/package-lock.json pins, each package checked against its
# integrity hash, so every released image bundles the same GraphiQL. Node, pinned
# to an exact tag, exists only in this stage; no node in the runtime image.
FROM node:20.20.2-bookworm-slim AS graphiql
WORKDIR /app/assets/graphiql
COPY assets/graphiql/package.json assets/graphiql/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM rust:1.95.0-slim-bookworm AS chef
WORKDIR /app
# cargo-chef pinned, and built from its own Cargo.lock (--locked), so the
# caching tool itself cannot change under us between two builds.
RUN cargo install cargo-chef --locked --version 0.1.77

FROM chef AS planner
COPY . .
# recipe.json is the dependency graph only (manifests + lock file, no code):
# it stays byte-identical when only src/ changes, which keeps the next
# stage's dependency layer cached.
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Compiles every dependency in its own layer; a source-only change starts
# rebuilding below this line, with only the workspace crates left to compile.
RUN cargo chef cook --release --locked --bin coworking-gateway --recipe-path recipe.json
COPY . .
COPY --from=graphiql /app/assets/graphiql/node_modules assets/graphiql/node_modules
# build.rs reads the commit for build_info{git_sha}; .git is not in the context.
# GATEWAY_REQUIRE_GRAPHIQL=1: build.rs fails instead of falling back to the
# simple playground, so an image without GraphiQL is never built by mistake.
ARG REVISION=unknown
ENV GIT_SHA=${REVISION} \
    GATEWAY_REQUIRE_GRAPHIQL=1
# /app/data becomes the runtime working directory, owned by the app user:
# `docker run` without a database uses the embedded SQLite file there.
RUN cargo build --release --locked --bin coworking-gateway \
    && mkdir -p /app/data

# Runtime: distroless/cc has glibc, libgcc, CA certificates and tzdata but no
# shell or package manager (small attack surface), and glibc means we
# keep the default target instead of a musl build with a slower allocator.
# The tag pins the Debian 12 release line; pin a digest
# (`cc-debian12@sha256:...`) if you need byte-identical rebuilds.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE_URL=unknown

LABEL org.opencontainers.image.title="coworking-gateway" \
      org.opencontainers.image.description="GraphQL analytics gateway for the coworking service, with the legacy REST reports" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT"

COPY --from=builder /app/target/release/coworking-gateway /usr/local/bin/coworking-gateway
COPY --from=builder --chown=10001:10001 /app/data /data
WORKDIR /data

# A fixed numeric UID/GID >= 10000 (not the image's 65532 "nonroot"), so it
# never collides with a host user and matches runAsUser in k8s/base.
USER 10001:10001

ENV APP_PORT=5153 \
    LOG_FORMAT=json
EXPOSE 5153

# No curl/wget in distroless: the binary probes its own /health_check on APP_PORT.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/coworking-gateway", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/coworking-gateway"]
CMD ["serve"]
