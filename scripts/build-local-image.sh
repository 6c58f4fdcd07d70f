#!/usr/bin/env bash
# Build container images from programs already on this machine, with no base
# image to pull (FROM scratch): the binary, the shared libraries ldd lists, the
# dynamic loader, a passwd entry for the non-root user and the CA bundle.
#
#   scripts/build-local-image.sh homeostat [BINARY] [TAG]    # default: target/release/homeostat, else target/debug; homeostat:local
#   scripts/build-local-image.sh prometheus [TAG]            # Debian's /usr/bin/prometheus; prometheus:local
#
# deploy/Dockerfile.local describes the homeostat image; deploy/docker-compose/
# uses both. deploy/Dockerfile is the two-stage build for machines that can pull.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:?usage: build-local-image.sh homeostat [BINARY] [TAG] | prometheus [TAG]}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/root"
mkdir -p "$root/etc/ssl/certs" "$root/tmp"

# Copy a program and everything it links into the image root.
add_program() {
  local bin=$1 dest=$2
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$bin" "$root$dest"
  strip "$root$dest" 2>/dev/null || true
  local lib
  for lib in $(ldd "$bin" | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
mkdir -p "$ctx/data"   # copied with --chown so a fresh volume is writable by 65534

case "$what" in
  homeostat)
    bin=${2:-}
    if [ -z "$bin" ]; then
      if [ -x target/release/homeostat ]; then bin=target/release/homeostat; else bin=target/debug/homeostat; fi
    fi
    [ -x "$bin" ] || { echo "no binary at $bin: run cargo build --release first" >&2; exit 1; }
    tag=${3:-homeostat:local}
    add_program "$bin" /usr/local/bin/homeostat
    cp deploy/Dockerfile.local "$ctx/Dockerfile"
    ;;
  prometheus)
    bin=$(command -v prometheus || true)
    [ -n "$bin" ] || { echo "prometheus is not installed: apt-get install prometheus" >&2; exit 1; }
    tag=${2:-prometheus:local}
    add_program "$bin" /bin/prometheus
    cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
COPY --chown=65534:65534 data/ /prometheus/
USER 65534:65534
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
    ;;
  *) echo "unknown image $what (homeostat or prometheus)" >&2; exit 2 ;;
esac

# The classic builder: FROM scratch needs no registry (BuildKit is not installed here).
if ! DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >"$ctx/build.log" 2>&1; then
  cat "$ctx/build.log" >&2
  exit 1
fi
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "built $tag from $bin: $((size / 1000000)) MB"
