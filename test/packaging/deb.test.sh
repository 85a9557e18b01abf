#!/usr/bin/env bash
# Builds the .deb, installs it with apt into a fresh Debian 12 root (debootstrap minbase)
# and runs vipd there. Root only. Ends with "N passed, N failed".
#   VIPD_TEST_DEB=path     test this .deb instead of building one
#   VIPD_TEST_MIRROR=url   the Debian mirror (default: the host's bookworm source)
#   VIPD_TEST_KEEP=1       keep the root for a look afterwards (mounts are still removed)
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "deb.test.sh: run as root (debootstrap, chroot, netns)" >&2; exit 1; }

cache=/var/cache/vipd-test
arch=$(dpkg --print-architecture)
tarball=$cache/bookworm-minbase-$arch.tgz
work=$(mktemp -d /var/tmp/vipd-deb-test.XXXXXX)
root=$work/root
netns=vipd-deb-test-$$
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -lt 2 ] || sed 's/^/#   /' <<<"$2"; }
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

cleanup() {
  ip netns del "$netns" 2>/dev/null
  # Deepest first; lazy, so a busy mount still goes.
  awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" || echo "deb.test.sh: could not unmount $mnt" >&2
  done
  if awk -v r="$root/" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "deb.test.sh: mounts remain under $root; not removing it" >&2
  elif [ "${VIPD_TEST_KEEP:-}" = 1 ]; then
    echo "# kept $root"
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The host's own bookworm mirror: one-line sources.list or deb822 .sources.
host_mirror() {
  local file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk '{ sub(/\[[^]]*\]/, "") } $1 == "deb" && $3 == "bookworm" { print $2; exit }' "$file"
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; ok = 0
           for (n = 1; n <= NF; n++) {
             if ($n ~ /^URIs:/) { split($n, w, /[ \t]+/); uri = w[2] }
             if ($n ~ /^Suites:/ && $n ~ /[ \t]bookworm([ \t]|$)/) ok = 1
           }
           if (ok && uri != "") { print uri; exit } }' "$file"
  done
}
mirror=${VIPD_TEST_MIRROR:-$(host_mirror | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
echo "# mirror $mirror"

# 1. The package.
version=$(node -p "require('$repo/package.json').version" | tr '-' '~')
if [ -n "${VIPD_TEST_DEB:-}" ]; then
  deb=$VIPD_TEST_DEB
else
  deb=$work/out/vipd_${version}_$arch.deb
  if VIPD_DEB_OUT=$work/out "$repo/scripts/build-deb" >"$work/build.log" 2>&1 && [ -f "$deb" ]; then
    pass "scripts/build-deb builds vipd_${version}_$arch.deb ($(du -h "$deb" | cut -f1))"
  else
    fail "scripts/build-deb builds vipd_${version}_$arch.deb" "$(tail -n 20 "$work/build.log")"
    echo "$passed passed, $failed failed"
    exit 1
  fi
fi

# 2. A clean bookworm root, from a cached tarball of its packages (refreshed weekly).
mkdir -p "$cache"
if [ ! -s "$tarball" ] || [ -n "$(find "$tarball" -mtime +7)" ]; then
  rm -f "$tarball"
  debootstrap --variant=minbase --arch="$arch" --make-tarball="$tarball" bookworm "$work/tarball-root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || rm -f "$tarball"
fi
if [ -s "$tarball" ] &&
  debootstrap --variant=minbase --arch="$arch" --unpack-tarball="$tarball" bookworm "$root" "$mirror" \
    >>"$work/debootstrap.log" 2>&1; then
  pass "debootstrap --variant=minbase bookworm"
else
  fail "debootstrap --variant=minbase bookworm" "$(tail -n 20 "$work/debootstrap.log")"
  echo "$passed passed, $failed failed"
  exit 1
fi
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Nothing installed here may start a daemon (etcd-server is recommended).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/"
debname=$(basename "$deb")

# 3. apt installs it with its dependencies, as a user would.
if in_root sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./tmp/$debname" \
  >"$work/apt.log" 2>&1; then
  pass "apt-get install ./$debname in the fresh root"
else
  fail "apt-get install ./$debname in the fresh root" "$(tail -n 20 "$work/apt.log")"
fi

# 4. The command.
out=$(in_root vipd --version 2>&1)
if [ "$out" = "$version" ]; then pass "vipd --version prints $version"; else fail "vipd --version prints $version" "$out"; fi

out=$(in_root sh -c 'command -v ip && command -v setpriv && command -v udhcpc && /usr/lib/vipd/node --version' 2>&1)
node_major=$(tail -n 1 <<<"$out" | sed -n 's/^v\([0-9]*\)\..*/\1/p')
if [ "${node_major:-0}" -ge 20 ]; then
  pass "ip, setpriv and udhcpc installed; bundled $(tail -n 1 <<<"$out")"
else
  fail "ip, setpriv and udhcpc installed; bundled node >= 20" "$out"
fi

out=$(in_root /usr/lib/vipd/node -e "require('/usr/lib/vipd/build/Release/vipd_packet.node');
  const d = '/usr/lib/vipd/dist/src/api/dashboard.js';
  if (require('fs').existsSync(d)) { const b = require(d).loadDashboard(); console.log('dashboard assets', b.assets.size); }
  else console.log('no dashboard in this build');" 2>&1)
if [ $? -eq 0 ]; then pass "addon loads; $out"; else fail "addon and dashboard assets load" "$out"; fi

# 5. doctor, in a network namespace of its own: the management interface the example config
# names, with an address in the VIP's subnet, and no etcd anywhere. Nothing leaves it.
read -r ifname vip < <(in_root /usr/lib/vipd/node -e "
  const c = require('/usr/lib/vipd/node_modules/yaml').parse(require('fs').readFileSync('/etc/vipd/config.yaml.example', 'utf8'));
  console.log(c.node.interface, c.vip.address || '192.0.2.10')")
node_ip=${vip%.*}.$(((${vip##*.} % 250) + 1))
# A veth pair with both ends inside: frames to the peer go nowhere else.
if ip netns add "$netns" && ip -n "$netns" link set lo up &&
  ip -n "$netns" link add "$ifname" type veth peer name vipd-peer &&
  ip -n "$netns" addr add "$node_ip/24" dev "$ifname" &&
  ip -n "$netns" link set vipd-peer up && ip -n "$netns" link set "$ifname" up; then
  pass "a network namespace with $ifname at $node_ip/24, as the example config expects"
else
  fail "a network namespace with $ifname at $node_ip/24, as the example config expects"
fi

help=$(in_root vipd --help 2>&1)
if grep -q '^ *run ' <<<"$help" && grep -q '^ *status ' <<<"$help"; then
  pass "vipd --help lists the commands"
else
  fail "vipd --help lists the commands" "$help"
fi
if [ -f "$root/usr/lib/vipd/dist/src/doctor/command.js" ]; then
  out=$(timeout 120 ip netns exec "$netns" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    vipd doctor --config /etc/vipd/config.yaml.example 2>&1)
  code=$?
  if [ $code -eq 1 ] && ! grep -qE '^vipd: .*Error|^ +at ' <<<"$out"; then
    pass "vipd doctor --config /etc/vipd/config.yaml.example exits 1 (etcd unreachable)"
    sed 's/^/#   /' <<<"$out"
  else
    fail "vipd doctor --config /etc/vipd/config.yaml.example exits 1 (etcd unreachable), got $code" "$out"
  fi
else
  echo "# vipd doctor is not in this build (no dist/src/doctor/command.js): not run"
fi

# 6. The DaemonSet parses, and its ConfigMap's config passes vipd's own check (which looks at
# the etcd TLS files: empty stand-ins here).
cp "$repo/packaging/kubernetes/daemonset.yaml" "$root/tmp/daemonset.yaml"
mkdir -p "$root/etc/vipd/etcd"
for file in ca.crt client.crt client.key; do install -m 600 /dev/null "$root/etc/vipd/etcd/$file"; done
out=$(in_root /usr/lib/vipd/node -e "
  const fs = require('fs'), YAML = require('/usr/lib/vipd/node_modules/yaml');
  const docs = YAML.parseAllDocuments(fs.readFileSync('/tmp/daemonset.yaml', 'utf8'));
  for (const doc of docs) if (doc.errors.length > 0) throw doc.errors[0];
  const [map, set] = docs.map((doc) => doc.toJS());
  fs.writeFileSync('/tmp/ds-config.yaml', map.data['config.yaml'], { mode: 0o644 });
  const config = require('/usr/lib/vipd/dist/src/config/config.js').loadConfig('/tmp/ds-config.yaml');
  console.log(set.kind, set.spec.template.spec.containers[0].securityContext.capabilities.add.join(' '), config.vip.mode, config.vip.address);" 2>&1)
if [ $? -eq 0 ]; then pass "daemonset.yaml parses and its config passes loadConfig ($out)"; else fail "daemonset.yaml parses and its config passes loadConfig" "$out"; fi
rm -rf "$root/etc/vipd/etcd"

# 7. The unit, checked by the bookworm systemd against the installed files.
if in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd' >"$work/systemd.log" 2>&1 &&
  out=$(in_root systemd-analyze verify --man=no /lib/systemd/system/vipd.service 2>&1) && [ -z "$out" ]; then
  pass "systemd-analyze verify vipd.service"
else
  fail "systemd-analyze verify vipd.service" "${out:-$(tail -n 20 "$work/systemd.log")}"
fi
score=$(in_root systemd-analyze security --offline=true /lib/systemd/system/vipd.service 2>&1 | sed -n 's/.*Overall exposure level for vipd.service: //p')
echo "# systemd-analyze security: ${score:-unavailable}"

# 8. Removal and purge run the maintainer scripts cleanly and leave nothing of vipd's.
if in_root sh -c 'apt-get remove -y -q vipd && apt-get purge -y -q vipd' >"$work/remove.log" 2>&1 &&
  [ ! -e "$root/usr/lib/vipd" ] && [ ! -e "$root/usr/bin/vipd" ] && [ ! -e "$root/etc/vipd/config.yaml.example" ]; then
  pass "apt-get remove and purge vipd"
else
  fail "apt-get remove and purge vipd" "$(tail -n 20 "$work/remove.log")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
