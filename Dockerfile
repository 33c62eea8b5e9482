# duet: a small runtime image of the `duet` binary.
#
# No Docker engine runs on the project's build machines, so this file is kept conventional and is
# not exercised by CI; the binary it ships is the one CI tests.
#
#   docker build -t duet .
#   docker run --rm -p 6432:6432 duet proxy --listen 0.0.0.0:6432 --backend postgres://app@db:5432/app

FROM rust:1-bookworm AS build
# pg_query (the real PostgreSQL grammar) compiles libpg_query and needs libclang for bindgen.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin duet

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin duet
COPY --from=build /src/target/release/duet /usr/local/bin/duet
COPY config/duet.toml /etc/duet/duet.toml
USER duet
EXPOSE 6432
ENTRYPOINT ["/usr/local/bin/duet"]
CMD ["proxy", "--config", "/etc/duet/duet.toml"]
