#!/usr/bin/env bash
# Build the images of the live evaluation (bench/live/run.py) from Debian packages: mmdebstrap
# --variant=minbase of bookworm with the service's packages, then `docker import`. No registry.
# Every image is DELIBERATELY VULNERABLE (it is an attack target; never deploy one):
#   ngram-live-nginx     nginx-light + fcgiwrap; static site, /cgi-bin/run?CMD (runs CMD with sh)
#   ngram-live-python    python3 http.server ThreadingHTTPServer (bench/live/images/python/app.py)
#   ngram-live-apache    apache2 mpm_prefork + libapache2-mod-php (bench/live/images/apache/*.php)
#   ngram-live-postgres  postgresql-15, trust authentication over TCP, run as postgres
#   ngram-live-redis     redis-server 7, protected configs, DEBUG and MODULE enabled, run as redis
#   ngram-live-go        a static CGO_ENABLED=0 net/http server built on the host with Debian's
#                        golang-go (bench/live/images/go/main.go), in a minbase image
#                        (python and go run as user app, which owns its web root /srv/www: an
#                        upload whose name climbs out of uploads/ can deface it, issue 16)
#   ngram-live-tomcat    tomcat10 (OpenJDK 17 headless) with JSPs (bench/live/images/tomcat/)
#   ngram-live-node      Debian's nodejs (Node 18), standard library only (bench/live/images/
#                        node/app.js: the python service's routes), run as user app
# The web services have /tool/wc?file= (command injection), /read?name= (path traversal) or
# their PHP/JSP/CGI equivalents; every image has /srv/secret.key (readable by the service's
# user) holding the token "LIVE-SECRET-KEY-9f27c1" and the tools the attacks use (bash, mount,
# unshare). Root filesystem tarballs are cached under $NGRAM_IDS_IMAGE_CACHE/live/<service>-
# <hash>.tar, the hash taken over this script (without the import metadata), the service's files
# and bench/live/images/common. Each image carries the label ngram-ids.live.build=<that hash
# and the import metadata>: an image with the current label is kept, otherwise re-imported.
#
# Usage: bench/live/build-images.sh [--force] [--no-import] [SERVICE...]
#   SERVICE: nginx python apache postgres redis go tomcat node (default: all)
#   --force      rebuild the tarballs and re-import
#   --no-import  only build the tarballs (no dockerd needed)
# Env:   NGRAM_IDS_IMAGE_CACHE (default /var/cache/ngram-ids-images), NGRAM_IDS_SUITE (bookworm)
set -euo pipefail

die() { echo "build-live-images: error: $*" >&2; exit 1; }
log() { echo "build-live-images: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
images=$here/images
all=(nginx python apache postgres redis go tomcat node)
force=0 import=1 services=()
for a in "$@"; do
    case $a in
        --force) force=1 ;;
        --no-import) import=0 ;;
        nginx | python | apache | postgres | redis | go | tomcat | node) services+=("$a") ;;
        *) die "unknown argument '$a' (usage: build-images.sh [--force] [--no-import] [SERVICE...])" ;;
    esac
done
((${#services[@]})) || services=("${all[@]}")

[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap and docker need it)"
need=(mmdebstrap sha256sum tar)
((import)) && need+=(docker)
for cmd in "${need[@]}"; do
    command -v "$cmd" >/dev/null || die "$cmd is missing (apt-get install mmdebstrap docker.io)"
done

cache=${NGRAM_IDS_IMAGE_CACHE:-/var/cache/ngram-ids-images}/live
suite=${NGRAM_IDS_SUITE:-bookworm}
label=ngram-ids.live.build
mkdir -p "$cache"
work=$(mktemp -d /tmp/ngram-live-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The hash of an image's root filesystem: this script without its import metadata (the lines
# that set `changes`), images/common and images/SERVICE; the image's label adds the metadata.
rootfs_hash() {
    (
        cd "$here"
        grep -v -e "changes=" -e "^ *'[A-Z]* " build-images.sh
        # Only directories that exist: git keeps no empty directory, so a service without files
        # of its own (redis, postgres, nginx) has none in a clean clone.
        local dirs=(images/common)
        [[ -d "images/$1" ]] && dirs+=("images/$1")
        find "${dirs[@]}" -type f -print0 | sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -c1-16
}

current() {
    [[ $force -eq 0 ]] || return 1
    [[ $(docker image inspect --format "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null) == "$2" ]]
}

apt_sources() {
    if [[ -s /etc/apt/sources.list.d/debian.sources ]]; then
        cp /etc/apt/sources.list.d/debian.sources "$work/sources.sources"
        echo "$work/sources.sources"
    elif grep -Eq '^deb .*debian' /etc/apt/sources.list 2>/dev/null; then
        grep -E '^deb .*debian' /etc/apt/sources.list >"$work/sources.list"
        echo "$work/sources.list"
    else
        echo "http://deb.debian.org/debian"
    fi
}

# common_files DIR WEBROOT: the static site, the data files, the secret key.
common_files() {
    local dir=$1 webroot=$2
    mkdir -p "$dir$webroot/uploads" "$dir/srv/data" "$dir/srv/state"
    cp "$images"/common/*.html "$images"/common/*.css "$images"/common/*.js "$dir$webroot/"
    cp "$images"/common/data/*.txt "$dir/srv/data/"
    echo "LIVE-SECRET-KEY-9f27c1" >"$dir/srv/secret.key"
}

# tarball SERVICE PACKAGES FILES-DIR HOOK...: mmdebstrap minbase + PACKAGES, FILES-DIR synced
# into /, then the customize hooks (shell run on the host, $1 = the root directory).
tarball() {
    local svc=$1 packages=$2 files=$3 tar=$4
    shift 4
    [[ -s $tar ]] && return 0
    local hooks=()
    for h in "$@"; do hooks+=(--customize-hook="$h"); done
    log "mmdebstrap $suite + $packages (for $svc; a few minutes)"
    mmdebstrap --verbose --format=tar --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --essential-hook='mkdir -p "$1/usr/share/man/man1"' \
        --customize-hook="sync-in $files /" \
        "${hooks[@]}" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        "$suite" "$tar.tmp" "$(apt_sources)" </dev/null >"$work/mmdebstrap-$svc.log" 2>&1 \
        || {
            cp "$work/mmdebstrap-$svc.log" "/tmp/ngram-live-mmdebstrap-$svc.log"
            die "mmdebstrap for $svc failed (log: /tmp/ngram-live-mmdebstrap-$svc.log): $(grep -iE 'error|fail' "$work/mmdebstrap-$svc.log" | tail -n 4 | tr '\n' ' ')"
        }
    mv -f "$tar.tmp" "$tar"
    log "built $tar ($(du -h "$tar" | cut -f1))"
}

do_import() {
    local tar=$1 image=$2 hash=$3
    shift 3
    local changes=(--change "LABEL $label=$hash")
    for c in "$@"; do changes+=(--change "$c"); done
    local old
    old=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    docker import "${changes[@]}" "$tar" "$image:latest" >/dev/null || die "docker import of $tar as $image failed"
    if [[ -n $old && $old != "$(docker image inspect --format '{{.Id}}' "$image")" ]]; then
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
    log "$image ready"
}

# Hooks shared by all: the key readable by the service's group only.
key_hook() { echo "chroot \"\$1\" sh -c 'chown root:$1 /srv/secret.key && chmod 0640 /srv/secret.key'"; }

build() {
    local svc=$1 rhash hash files tar
    rhash=$(rootfs_hash "$svc")
    local image=ngram-live-$svc
    files=$work/files-$svc
    tar=$cache/$svc-$rhash.tar
    ((force)) && rm -f "$tar"
    # Older tarballs of this service are stale.
    find "$cache" -maxdepth 1 -name "$svc-*.tar*" ! -name "$svc-$rhash.tar" -delete
    mkdir -p "$files"
    local changes=()
    case $svc in
        nginx)
            common_files "$files" /var/www/html
            mkdir -p "$files/etc/nginx/sites-available" "$files/usr/lib/cgi-bin" "$files/usr/local/sbin"
            cat >"$files/etc/nginx/sites-available/default" <<'NGINX'
server {
    listen 80 default_server;
    root /var/www/html;
    index index.html;
    location / { try_files $uri $uri/ =404; }
    location /cgi-bin/ {
        gzip off;
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME /usr/lib$fastcgi_script_name;
        fastcgi_pass unix:/run/fcgiwrap.socket;
    }
}
NGINX
            cat >"$files/usr/lib/cgi-bin/run" <<'CGI'
#!/bin/bash
# DELIBERATELY VULNERABLE: /cgi-bin/run?CMD runs the URL-decoded query string with sh -c.
q=${QUERY_STRING//+/ }
printf 'Content-Type: text/plain\r\n\r\n'
sh -c "$(printf '%b' "${q//%/\\x}")" 2>&1
CGI
            cat >"$files/usr/lib/cgi-bin/stats" <<'CGI'
#!/bin/sh
# A fixed CGI: load average and the size of the site.
printf 'Content-Type: text/plain\r\n\r\n'
cat /proc/loadavg
du -s /var/www/html | cut -f1
CGI
            cat >"$files/usr/local/sbin/ngram-live-nginx" <<'ENTRY'
#!/bin/sh
set -e
rm -f /run/fcgiwrap.socket
spawn-fcgi -s /run/fcgiwrap.socket -M 0660 -u www-data -g www-data -U www-data -G www-data \
    -- /usr/sbin/fcgiwrap >/dev/null
exec nginx -g 'daemon off;'
ENTRY
            chmod 0755 "$files"/usr/lib/cgi-bin/* "$files/usr/local/sbin/ngram-live-nginx"
            tarball nginx nginx-light,fcgiwrap,spawn-fcgi,mount "$files" "$tar" \
                "$(key_hook www-data)" \
                'chroot "$1" chown www-data:www-data /var/www/html/uploads'
            changes=('CMD ["/usr/local/sbin/ngram-live-nginx"]' 'EXPOSE 80')
            ;;
        python)
            common_files "$files" /srv/www
            mkdir -p "$files/srv/app"
            cp "$images/python/app.py" "$files/srv/app/app.py"
            tarball python python3,mount "$files" "$tar" \
                'chroot "$1" useradd --system --uid 999 --user-group --home-dir /srv/app app' \
                "$(key_hook app)" \
                'chroot "$1" chown app:app /srv/www /srv/www/uploads /srv/state'
            changes=('CMD ["/usr/bin/python3", "/srv/app/app.py"]' 'USER app' 'EXPOSE 8080')
            ;;
        go)
            common_files "$files" /srv/www
            mkdir -p "$files/srv/app" "$work/go"
            command -v go >/dev/null || die "go is missing (apt-get install golang-go)"
            (cd "$images/go" && HOME=$work/go GOCACHE=$work/go/cache GO111MODULE=off CGO_ENABLED=0 \
                go build -trimpath -o "$files/srv/app/server" main.go) || die "go build failed"
            tarball go mount "$files" "$tar" \
                'chroot "$1" useradd --system --uid 999 --user-group --home-dir /srv/app app' \
                "$(key_hook app)" \
                'chroot "$1" chown app:app /srv/www /srv/www/uploads /srv/state'
            changes=('CMD ["/srv/app/server"]' 'USER app' 'EXPOSE 8080')
            ;;
        node)
            common_files "$files" /srv/www
            mkdir -p "$files/srv/app"
            cp "$images/node/app.js" "$files/srv/app/app.js"
            tarball node nodejs,mount "$files" "$tar" \
                'chroot "$1" useradd --system --uid 999 --user-group --home-dir /srv/app app' \
                "$(key_hook app)" \
                'chroot "$1" chown app:app /srv/www /srv/www/uploads /srv/state'
            changes=('CMD ["/usr/bin/node", "/srv/app/app.js"]' 'USER app' 'EXPOSE 8080')
            ;;
        apache)
            common_files "$files" /var/www/html
            cp "$images"/apache/*.php "$files/var/www/html/"
            echo '[]' >"$files/srv/state/items.json"
            mkdir -p "$files/usr/local/sbin" "$files/etc/apache2/conf-available"
            echo 'ServerName localhost' >"$files/etc/apache2/conf-available/live.conf"
            cat >"$files/usr/local/sbin/ngram-live-apache" <<'ENTRY'
#!/bin/sh
# apache2 in the foreground as pid 1 (prefork: a root parent, www-data children).
set -e
. /etc/apache2/envvars
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
exec /usr/sbin/apache2 -D FOREGROUND
ENTRY
            chmod 0755 "$files/usr/local/sbin/ngram-live-apache"
            tarball apache apache2,libapache2-mod-php,mount "$files" "$tar" \
                'rm -f "$1/var/www/html/index.html"' \
                'chroot "$1" sh -c "a2dismod -q -f mpm_event >/dev/null 2>&1 || true; a2enmod -q mpm_prefork >/dev/null; a2enmod -q php8.2 >/dev/null; a2enconf -q live >/dev/null"' \
                "$(key_hook www-data)" \
                'chroot "$1" chown -R www-data:www-data /var/www/html/uploads /srv/state'
            changes=('CMD ["/usr/local/sbin/ngram-live-apache"]' 'EXPOSE 80')
            ;;
        postgres)
            common_files "$files" /srv/www
            tarball postgres postgresql-15,mount "$files" "$tar" \
                'chroot "$1" sh -c "[ -d /var/lib/postgresql/15/main ] || pg_createcluster 15 main >/dev/null"' \
                'printf "%s\n" "listen_addresses = '"'"'*'"'"'" "ssl = off" "max_connections = 60" "log_destination = stderr" "logging_collector = off" >>"$1/etc/postgresql/15/main/postgresql.conf"' \
                'echo "host all all 0.0.0.0/0 trust" >>"$1/etc/postgresql/15/main/pg_hba.conf"' \
                "$(key_hook postgres)"
            changes=('CMD ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main", "-c", "config_file=/etc/postgresql/15/main/postgresql.conf", "-c", "unix_socket_directories=/tmp"]'
                'USER postgres' 'EXPOSE 5432')
            ;;
        redis)
            common_files "$files" /srv/www
            mkdir -p "$files/etc/redis"
            cat >"$files/etc/redis/redis-live.conf" <<'CONF'
# ngram-live-redis: DELIBERATELY OPEN (no password, protected configs, DEBUG and MODULE enabled).
bind 0.0.0.0
protected-mode no
port 6379
daemonize no
supervised no
logfile ""
dir /var/lib/redis
dbfilename dump.rdb
save 60 1000
appendonly yes
appendfsync everysec
lazyfree-lazy-user-del yes
enable-protected-configs yes
enable-debug-command yes
enable-module-command yes
CONF
            tarball redis redis-server,mount "$files" "$tar" \
                'chroot "$1" sh -c "mkdir -p /var/lib/redis/.ssh && chown -R redis:redis /var/lib/redis && chmod 0644 /etc/redis/redis-live.conf"' \
                "$(key_hook redis)"
            changes=('CMD ["/usr/bin/redis-server", "/etc/redis/redis-live.conf"]' 'USER redis' 'EXPOSE 6379')
            ;;
        tomcat)
            local root=/var/lib/tomcat10/webapps/ROOT
            common_files "$files" $root
            cp "$images"/tomcat/*.jsp "$files$root/"
            tarball tomcat tomcat10,systemd-standalone-sysusers,systemd-standalone-tmpfiles,mount "$files" "$tar" \
                'rm -f "$1/var/lib/tomcat10/webapps/ROOT/index.html"' \
                'chroot "$1" sh -c "getent passwd tomcat >/dev/null || useradd --system --user-group --home-dir /var/lib/tomcat10 tomcat"' \
                'chroot "$1" sh -c "mkdir -p /var/cache/tomcat10 /var/log/tomcat10 /var/lib/tomcat10/work && chown -R tomcat:tomcat /var/cache/tomcat10 /var/log/tomcat10 /var/lib/tomcat10/work /var/lib/tomcat10/webapps/ROOT/uploads"' \
                "$(key_hook tomcat)"
            changes=('CMD ["/usr/share/tomcat10/bin/catalina.sh", "run"]' 'USER tomcat'
                'ENV CATALINA_HOME=/usr/share/tomcat10' 'ENV CATALINA_BASE=/var/lib/tomcat10'
                'ENV CATALINA_TMPDIR=/tmp' 'ENV JAVA_OPTS=-Xmx256m' 'EXPOSE 8080')
            ;;
    esac
    ((import)) || return 0
    # The label: the root filesystem's hash and the import metadata.
    hash=$(printf '%s\n' "$rhash" "${changes[@]}" | sha256sum | cut -c1-16)
    if current "$image" "$hash"; then
        log "$image is current"
        return 0
    fi
    do_import "$tar" "$image" "$hash" "${changes[@]}"
}

start=$SECONDS
for s in "${services[@]}"; do build "$s"; done
log "done in $((SECONDS - start))s (cache: $cache)"
