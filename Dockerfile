# Multi-stage build of the `licentia` binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p licentia-api

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && printf '#!/bin/sh\nexec curl -fsS http://127.0.0.1:8080/readyz >/dev/null\n' > /usr/local/bin/licentia-healthcheck \
    && chmod +x /usr/local/bin/licentia-healthcheck
COPY --from=build /src/target/release/licentia /usr/local/bin/licentia
USER nobody
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/licentia"]
CMD ["serve"]
