#!/bin/sh
# Install, upgrade or roll back dso on this host (as root). Every dso release carries this script.
#
#   sudo ./dso-VERSION/install                       install the unpacked release, make it current
#   sudo sh install --from dso-VERSION-linux-x86_64.tar.gz [--sums FILE]
#                                                    the same from the tarball
#   sudo /opt/dso/current/install --rollback         back to the release current before the last switch
#   sh install --list                                installed releases, current and previous
#
# Nothing is replaced before the release's SHA256SUMS has been verified: every file listed matches,
# and no file is unlisted (with --from, the tarball is also checked against the SHA256SUMS published
# beside it, when there is one). A release lives in /opt/dso/releases/<version>/ (dso/ the frozen
# kernel, plugins/ its providers); /usr/local/bin/dso is a link to .../<version>/dso/dso, switched by
# one rename, and /usr/local/lib/docker/cli-plugins/docker-dso links to /usr/local/bin/dso, so one
# switch moves dso, docker dso and the bundled providers together. The link's previous target is
# recorded in /opt/dso/previous; /opt/dso/current follows the link to the release directory (for
# scripts: /opt/dso/current/install). The last 3 releases are kept, and older ones only when current,
# previous, or still run by a process. The agent is never restarted here: the script prints the
# command. --activate (the Debian package's postinst) switches to the release this script belongs
# to, already in /opt/dso/releases.
set -eu

RELEASES=/opt/dso/releases
PREVIOUS=/opt/dso/previous
CURRENT=/opt/dso/current
BIN=/usr/local/bin/dso
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PLUGIN=$PLUGIN_DIR/docker-dso
CONFIG=/etc/dso/dso.yaml
KEEP=3
GROUP=dso
PROG=install

# Temporary paths removed at exit, whatever happens (mktemp names and .VERSION.new.PID: no spaces).
CLEANUP=""
# shellcheck disable=SC2086 # a list of paths
cleanup() { [ -z "$CLEANUP" ] || rm -rf $CLEANUP; }
trap cleanup EXIT
trap 'exit 130' HUP INT TERM

say() { printf '%s\n' "$*"; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "$0"
    exit "${1:-0}"
}

# -- checks -------------------------------------------------------------------------------------

need_root() {
    [ "$(id -u)" = 0 ] || die "run it as root (sudo sh $0 $*); nothing was changed"
}

# version_of DIR: the release's version, from DIR/VERSION.
version_of() {
    [ -f "$1/VERSION" ] || die "$1 has no VERSION file: not a dso release; nothing was changed"
    v=$(cat "$1/VERSION")
    case $v in
    '' | *[!0-9A-Za-z.+~-]* | [!0-9]*) die "$1/VERSION: '$v' is not a release version" ;;
    esac
    printf '%s\n' "$v"
}

# verify DIR: every file of DIR is listed in DIR/SHA256SUMS and matches it.
verify() {
    dir=$1
    [ -f "$dir/SHA256SUMS" ] || die "$dir has no SHA256SUMS: not a dso release; nothing was changed"
    lists=$(mktemp -d "${TMPDIR:-/tmp}/dso-verify.XXXXXX")
    CLEANUP="$CLEANUP $lists"
    sed -n 's/^[0-9a-f]\{64\} [ *]//p' "$dir/SHA256SUMS" | LC_ALL=C sort >"$lists/listed"
    (cd "$dir" && find . \( -type f -o -type l \) ! -path ./SHA256SUMS) | sed 's|^\./||' |
        LC_ALL=C sort >"$lists/present"
    unlisted=$(LC_ALL=C comm -13 "$lists/listed" "$lists/present" | head -3 | paste -sd ' ' -)
    missing=$(LC_ALL=C comm -23 "$lists/listed" "$lists/present" | head -3 | paste -sd ' ' -)
    rm -rf "$lists"
    [ -z "$unlisted" ] || die "refusing $dir: files not in its SHA256SUMS: $unlisted; nothing was changed"
    [ -z "$missing" ] || die "refusing $dir: files of its SHA256SUMS are missing: $missing; nothing was changed"
    if ! failed=$(cd "$dir" && sha256sum --check --strict --quiet SHA256SUMS 2>&1); then
        die "refusing $dir: checksum mismatch (the release is damaged or was altered):
$failed
nothing was changed"
    fi
}

# verify_tarball FILE SUMS: FILE's line in SUMS (sha256sum format) matches FILE.
verify_tarball() {
    name=$(basename "$1")
    expected=$(awk -v f="$name" '$2 == f || $2 == "*" f { print $1; exit }' "$2")
    [ -n "$expected" ] || die "$2 does not list $name; nothing was changed"
    actual=$(sha256sum "$1" | cut -d ' ' -f 1)
    [ "$actual" = "$expected" ] ||
        die "checksum mismatch: $2 lists ${expected%"${expected#????????????????}"}… for $name, the file has ${actual%"${actual#????????????????}"}…; nothing was changed"
    say "verified $name against $2"
}

# -- links ----------------------------------------------------------------------------------------

# relink LINK TARGET: make LINK a symlink to TARGET with one rename (readers see old or new).
relink() {
    [ "$(readlink "$1" 2>/dev/null || true)" = "$2" ] && return 0
    mkdir -p "$(dirname "$1")"
    tmp="$1.new.$$"
    rm -f "$tmp"
    ln -s "$2" "$tmp"
    mv -T "$tmp" "$1"
}

current_target() {
    readlink "$BIN" 2>/dev/null || true
}

is_release_target() { # TARGET: true for /opt/dso/releases/<version>/dso/dso
    case $1 in
    "$RELEASES"/*/dso/dso) return 0 ;;
    *) return 1 ;;
    esac
}

release_of() { # TARGET (/opt/dso/releases/V/dso/dso) -> /opt/dso/releases/V
    printf '%s\n' "${1%/dso/dso}"
}

record_previous() {
    tmp="$PREVIOUS.new.$$"
    printf '%s\n' "$1" >"$tmp"
    mv -f "$tmp" "$PREVIOUS"
}

ensure_group() {
    if getent group "$GROUP" >/dev/null 2>&1; then
        return 0
    fi
    if command -v groupadd >/dev/null 2>&1; then
        groupadd --system "$GROUP"
        say "created the system group $GROUP (members may use the agent's socket)"
    else
        say "warning: no groupadd here: create the system group $GROUP yourself" >&2
    fi
}

# -- releases -------------------------------------------------------------------------------------

in_use() { # DIR: true when a running process's executable is inside DIR
    for exe in /proc/[0-9]*/exe; do
        case $(readlink "$exe" 2>/dev/null || true) in
        "$1"/*) return 0 ;;
        esac
    done
    return 1
}

owned_by_package() {
    command -v dpkg-query >/dev/null 2>&1 && dpkg-query -S "$1" >/dev/null 2>&1
}

# Release names are versions ([0-9A-Za-z.+~-]); ls -t orders them by install time (see activate).
# shellcheck disable=SC2045,SC2012

# prune: keep the KEEP newest releases, and the current one, the previous one, any a process
# runs from and any a package owns; remove the others.
prune() {
    current=$(release_of "$(current_target)")
    previous=""
    [ -f "$PREVIOUS" ] && previous=$(release_of "$(cat "$PREVIOUS")")
    newest=0
    removed=""
    for name in $(ls -1t "$RELEASES"); do
        dir=$RELEASES/$name
        [ -d "$dir" ] || continue
        newest=$((newest + 1))
        if [ $newest -le $KEEP ] || [ "$dir" = "$current" ] || [ "$dir" = "$previous" ] ||
            in_use "$dir" || owned_by_package "$dir"; then
            continue
        fi
        rm -rf "$dir"
        removed="$removed $name"
    done
    say "releases kept in $RELEASES (the last $KEEP, the current, the previous, any in use):" \
        "$(ls -1t "$RELEASES" | tr '\n' ' ')"
    [ -z "$removed" ] || say "removed older releases:$removed"
}

next_steps() {
    if [ -f "$CONFIG" ]; then
        say "An agent already running still runs the release it started from; restart it:"
        say "    sudo docker dso system restart"
    else
        say "Next, set up and start the agent:"
        say "    sudo docker dso bootstrap agent"
        say "    sudo docker dso system enable"
    fi
}

# activate DIR: make the verified release DIR the current one.
activate() {
    dest=$1
    target=$dest/dso/dso
    [ -x "$target" ] || die "$target is not an executable; nothing was changed"
    old=$(current_target)
    if [ -e "$BIN" ] && [ ! -L "$BIN" ]; then
        mv -f "$BIN" "$BIN.backup"
        say "moved the previous $BIN (not a release link) to $BIN.backup"
    fi
    relink "$BIN" "$target"
    relink "$CURRENT" "$dest"
    if is_release_target "$old" && [ "$old" != "$target" ] && [ -x "$old" ]; then
        record_previous "$old"
    elif [ -f "$PREVIOUS" ] && [ ! -x "$(cat "$PREVIOUS")" ]; then
        rm -f "$PREVIOUS" # its release is gone (e.g. removed by dpkg on an upgrade)
    fi
    relink "$PLUGIN" "$BIN"
    ensure_group
    touch "$dest" # the install time orders the releases for pruning
    say "dso $(cat "$dest/VERSION") is the current release: $BIN -> $target"
    say "docker dso: $PLUGIN -> $BIN"
    if [ -f "$PREVIOUS" ]; then
        say "previous release (sudo $CURRENT/install --rollback): $(release_of "$(cat "$PREVIOUS")")"
    fi
    prune
    next_steps
}

# -- commands -------------------------------------------------------------------------------------

cmd_install() {
    src=$1
    verify "$src"
    version=$(version_of "$src")
    dest=$RELEASES/$version
    if [ -d "$dest" ]; then
        cmp -s "$dest/SHA256SUMS" "$src/SHA256SUMS" ||
            die "$dest holds another build of $version (its SHA256SUMS differs); install another version, or remove that directory first if it is not the current release; nothing was changed"
        verify "$dest"
        say "release $version is already in $dest (verified)"
    else
        mkdir -p "$RELEASES"
        stage=$RELEASES/.$version.new.$$
        CLEANUP="$CLEANUP $stage"
        cp -a "$src" "$stage"
        chown -R 0:0 "$stage"
        chmod -R go-w "$stage"
        verify "$stage"
        mv -T "$stage" "$dest"
        say "installed $dest"
    fi
    activate "$dest"
}

cmd_from() {
    tarball=$1
    sums=$2
    [ -f "$tarball" ] || die "no such file: $tarball"
    if [ -n "$sums" ]; then
        [ -f "$sums" ] || die "no such file: $sums"
        verify_tarball "$tarball" "$sums"
    elif [ -f "$(dirname "$tarball")/SHA256SUMS" ]; then
        verify_tarball "$tarball" "$(dirname "$tarball")/SHA256SUMS"
    else
        say "note: no SHA256SUMS beside $tarball (--sums FILE): only the release's own checksums are verified"
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/dso-install.XXXXXX")
    CLEANUP="$CLEANUP $work"
    tar -xzf "$tarball" -C "$work" || die "cannot unpack $tarball; nothing was changed"
    set -- "$work"/dso-*/
    if [ $# -ne 1 ] || [ ! -d "$1" ]; then
        die "$tarball does not hold one dso-VERSION/ directory; nothing was changed"
    fi
    cmd_install "${1%/}"
}

cmd_activate() {
    version=$(version_of "$1")
    dest=$RELEASES/$version
    [ "$(cd "$1" && pwd -P)" = "$(cd "$dest" 2>/dev/null && pwd -P)" ] ||
        die "--activate switches to a release in $RELEASES/<version>, not $1; use install"
    verify "$dest"
    activate "$dest"
}

cmd_rollback() {
    [ -f "$PREVIOUS" ] || die "no previous release is recorded in $PREVIOUS: nothing to roll back to"
    target=$(cat "$PREVIOUS")
    dest=$(release_of "$target")
    [ -x "$target" ] ||
        die "the previous release $dest is gone (pruned, or removed with its package); install it again"
    verify "$dest"
    old=$(current_target)
    relink "$BIN" "$target"
    relink "$CURRENT" "$dest"
    if is_release_target "$old" && [ "$old" != "$target" ]; then
        record_previous "$old"
    fi
    relink "$PLUGIN" "$BIN"
    touch "$dest"
    say "rolled back: $BIN -> $target (dso $(cat "$dest/VERSION"))"
    if is_release_target "$old"; then
        say "previous release (--rollback again to return): $(release_of "$old")"
    fi
    say "The agent still runs the release it started from; restart it:"
    say "    sudo docker dso system restart"
}

# shellcheck disable=SC2045
cmd_list() {
    current=$(release_of "$(current_target)")
    previous=""
    [ -f "$PREVIOUS" ] && previous=$(release_of "$(cat "$PREVIOUS")")
    [ -d "$RELEASES" ] || {
        say "no release installed in $RELEASES"
        return 0
    }
    for name in $(ls -1t "$RELEASES"); do
        mark=""
        [ "$RELEASES/$name" = "$current" ] && mark=" (current)"
        [ "$RELEASES/$name" = "$previous" ] && mark=" (previous)"
        say "$name$mark"
    done
}

main() {
    mode=install
    tarball=""
    sums=""
    while [ $# -gt 0 ]; do
        case $1 in
        --from)
            [ $# -ge 2 ] || die "--from needs a tarball"
            mode=from
            tarball=$2
            shift
            ;;
        --sums)
            [ $# -ge 2 ] || die "--sums needs a file"
            sums=$2
            shift
            ;;
        --rollback) mode=rollback ;;
        --activate) mode=activate ;;
        --list) mode=list ;;
        -h | --help) usage 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
        esac
        shift
    done
    here=$(cd "$(dirname "$0")" && pwd -P)
    case $mode in
    list) cmd_list ;;
    rollback) need_root --rollback && cmd_rollback ;;
    activate) need_root --activate && cmd_activate "$here" ;;
    from) need_root --from "$tarball" && cmd_from "$tarball" "$sums" ;;
    install) need_root && cmd_install "$here" ;;
    esac
}

main "$@"
