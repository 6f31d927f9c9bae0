#!/usr/bin/env bash
# Build the local images the end-to-end tests use (no registry is needed):
#   ngram-busybox  busybox-static with its applet symlinks, /etc/passwd (root, nobody); CMD sh
#   ngram-nginx    Debian bookworm minbase + nginx-light (mmdebstrap); CMD nginx -g 'daemon off;'
#   ngram-nginx-cgi  the same + fcgiwrap and spawn-fcgi, serving the same index and a
#                  DELIBERATELY VULNERABLE /cgi-bin/run?CMD (runs the URL-decoded query with
#                  sh -c, output as text/plain; an attack target for the IDS tests); CMD starts
#                  fcgiwrap as www-data on /run/fcgiwrap.socket, then nginx -g 'daemon off;'
# Each image carries the label ngram-ids.e2e.build=<hash of this script>: an image with the
# current hash is kept, otherwise it is rebuilt. Root filesystem tarballs are cached under
# $NGRAM_IDS_IMAGE_CACHE/<hash>/ so CI can keep them between runs.
#
# Usage: scripts/build-images.sh [--force]
#   --force  rebuild the tarballs and re-import all images
# Env:   NGRAM_IDS_IMAGE_CACHE (default /var/cache/ngram-ids-images)
#        NGRAM_IDS_SUITE (default bookworm)
set -euo pipefail

die() { echo "build-images: error: $*" >&2; exit 1; }
log() { echo "build-images: $*" >&2; }

force=0
case ${1:-} in
    --force) force=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: build-images.sh [--force])" ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap and docker need it)"
for cmd in docker mmdebstrap sha256sum tar; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (run scripts/setup-host.sh)"
done
# busybox-static's binary (the busybox package, dynamically linked, would not run in the image).
busybox_bin=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/busybox$' || true)
[[ -n $busybox_bin && -x $busybox_bin ]] || die "busybox-static is not installed (run scripts/setup-host.sh)"

hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
cache=${NGRAM_IDS_IMAGE_CACHE:-/var/cache/ngram-ids-images}/$hash
suite=${NGRAM_IDS_SUITE:-bookworm}
label=ngram-ids.e2e.build
mkdir -p "$cache"
if ((force)); then
    rm -f "$cache"/*.tar
fi
# Tarballs of older versions of this script are stale: drop them (only directories named
# like a hash, in case the cache is pointed at a shared directory).
find "$(dirname "$cache")" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9a-f]{16}' ! -name "$hash" -exec rm -rf {} +

work=$(mktemp -d /tmp/ngram-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Is IMAGE present and built by this version of the script?
current() {
    [[ $force -eq 0 ]] || return 1
    [[ $(docker image inspect --format "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null) == "$hash" ]]
}

# import TARBALL IMAGE CHANGE...
import() {
    local tarball=$1 image=$2
    shift 2
    local changes=(--change "LABEL $label=$hash")
    for c in "$@"; do changes+=(--change "$c"); done
    local old
    old=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    docker import "${changes[@]}" "$tarball" "$image:latest" >/dev/null \
        || die "docker import of $tarball as $image failed"
    # The previous build is now untagged; drop it unless a container still uses it.
    if [[ -n $old && $old != "$(docker image inspect --format '{{.Id}}' "$image")" ]]; then
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
    log "$image ready ($(docker image inspect --format '{{.Id}}' "$image" | cut -c1-19))"
}

# Reproducible tarball of a directory tree.
pack() {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2.tmp" .
    mv -f "$2.tmp" "$2"
}

build_busybox() {
    local tarball=$cache/ngram-busybox.tar
    if [[ ! -s $tarball ]]; then
        local root=$work/busybox
        mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,proc,sys,dev,mnt}
        chmod 1777 "$root/tmp" "$root/var/tmp"
        chmod 0700 "$root/root"
        cp "$busybox_bin" "$root/bin/busybox"
        # Absolute argv[0]: in a chroot without /proc, busybox links to the path it was run by.
        chroot "$root" /bin/busybox --install -s || die "busybox --install -s failed"
        [[ -L $root/bin/sh ]] || die "busybox --install did not create /bin/sh"
        printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
            'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
        printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
        pack "$root" "$tarball"
        log "built $tarball"
    fi
    import "$tarball" ngram-busybox 'CMD ["sh"]'
}

# The Debian entries of this machine's apt sources (so mmdebstrap uses the same mirror).
apt_sources() {
    local out=$work/sources
    if [[ -s /etc/apt/sources.list.d/debian.sources ]]; then
        cp /etc/apt/sources.list.d/debian.sources "$out.sources"
        echo "$out.sources"
    elif grep -Eq '^deb .*debian' /etc/apt/sources.list 2>/dev/null; then
        grep -E '^deb .*debian' /etc/apt/sources.list >"$out.list"
        echo "$out.list"
    else
        echo "http://deb.debian.org/debian"
    fi
}

# debian_tarball TARBALL PACKAGES [MMDEBSTRAP-OPTION...]: Debian $suite minbase with PACKAGES
# (comma-separated) and the index page of the nginx images, as a tarball, unless it is cached.
debian_tarball() {
    local tarball=$1 packages=$2
    shift 2
    [[ -s $tarball ]] && return 0
    local sources
    sources=$(apt_sources)
    log "mmdebstrap $suite + $packages (mirror from $sources; about a minute)"
    # shellcheck disable=SC2016 # the hooks expand $1 (the chroot) themselves
    mmdebstrap --verbose --format=tar --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='echo "ngram-ids e2e nginx" > "$1/var/www/html/index.html"' \
        "$@" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        "$suite" "$tarball.tmp" "$sources" </dev/null >"$work/mmdebstrap.log" 2>&1 \
        || die "mmdebstrap failed (is the Debian mirror in the apt sources reachable?): $(tail -n 3 "$work/mmdebstrap.log" | tr '\n' ' ')"
    mv -f "$tarball.tmp" "$tarball"
    log "built $tarball"
}

build_nginx() {
    debian_tarball "$cache/ngram-nginx.tar" nginx-light
    import "$cache/ngram-nginx.tar" ngram-nginx 'CMD ["nginx", "-g", "daemon off;"]' 'EXPOSE 80'
}

# The files ngram-nginx-cgi adds to Debian's nginx-light, fcgiwrap and spawn-fcgi, in DIR.
cgi_files() {
    local dir=$1
    mkdir -p "$dir/etc/nginx/sites-available" "$dir/usr/lib/cgi-bin" "$dir/usr/local/sbin"
    cat >"$dir/etc/nginx/sites-available/default" <<'NGINX'
# ngram-nginx-cgi: the static index, and /cgi-bin/NAME run by fcgiwrap from /usr/lib/cgi-bin.
server {
    listen 80 default_server;
    root /var/www/html;
    index index.html;
    location / {
        try_files $uri $uri/ =404;
    }
    location /cgi-bin/ {
        gzip off;
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME /usr/lib$fastcgi_script_name;
        fastcgi_pass unix:/run/fcgiwrap.socket;
    }
}
NGINX
    cat >"$dir/usr/lib/cgi-bin/run" <<'CGI'
#!/bin/bash
# DELIBERATELY VULNERABLE (an attack target for the ngram-ids end-to-end tests; never deploy):
# /cgi-bin/run?CMD runs the URL-decoded query string with sh -c and returns what it prints.
q=${QUERY_STRING//+/ }
printf 'Content-Type: text/plain\r\n\r\n'
sh -c "$(printf '%b' "${q//%/\\x}")" 2>&1
CGI
    cat >"$dir/usr/local/sbin/ngram-nginx-cgi" <<'ENTRY'
#!/bin/sh
# CMD of ngram-nginx-cgi: fcgiwrap as www-data on /run/fcgiwrap.socket (spawn-fcgi creates the
# socket as root, hands it to www-data and runs fcgiwrap in the background), then nginx.
set -e
rm -f /run/fcgiwrap.socket
spawn-fcgi -s /run/fcgiwrap.socket -M 0660 -u www-data -g www-data -U www-data -G www-data \
    -- /usr/sbin/fcgiwrap >/dev/null
exec nginx -g 'daemon off;'
ENTRY
    chmod 0755 "$dir/usr/lib/cgi-bin/run" "$dir/usr/local/sbin/ngram-nginx-cgi"
}

build_nginx_cgi() {
    local files=$work/cgi-files
    cgi_files "$files"
    # spawn-fcgi: fcgiwrap cannot drop privileges itself, and www-data cannot create a socket
    # in /run.
    debian_tarball "$cache/ngram-nginx-cgi.tar" nginx-light,fcgiwrap,spawn-fcgi \
        --customize-hook="sync-in $files /"
    import "$cache/ngram-nginx-cgi.tar" ngram-nginx-cgi 'CMD ["/usr/local/sbin/ngram-nginx-cgi"]' 'EXPOSE 80'
}

start=$SECONDS
if current ngram-busybox; then log "ngram-busybox is current"; else build_busybox; fi
if current ngram-nginx; then log "ngram-nginx is current"; else build_nginx; fi
if current ngram-nginx-cgi; then log "ngram-nginx-cgi is current"; else build_nginx_cgi; fi
log "done in $((SECONDS - start))s (cache: $cache)"
