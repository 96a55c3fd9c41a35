// A hook script that publishes its standard input as the kubelet's
// AtomicWriter updates a Secret volume, for the tests of rotation hooks and
// of sidecars that follow such a volume.
#pragma once

namespace kosli::test {

// The hook: publishes its standard input as the kubelet's
// AtomicWriter updates a Secret volume ("..<timestamp>.<n>" directory, a
// "..data_tmp" symlink renamed over "..data", "api-key -> ..data/api-key",
// the old directory removed). With a second argument it then says its pid and
// blocks (in a child, cat) until the test has scanned the running processes.
constexpr const char* kPublishHook = R"SH(set -e
vol="$1"
gate="$2"
ts="..$(date -u +%Y_%m_%d_%H_%M_%S).$$"
mkdir "$vol/$ts"
cat > "$vol/$ts/api-key"
old=$(readlink "$vol/..data" || true)
ln -s "$ts" "$vol/..data_tmp"
mv -T "$vol/..data_tmp" "$vol/..data"
[ -L "$vol/api-key" ] || ln -s "..data/api-key" "$vol/api-key"
[ -z "$old" ] || rm -rf "$vol/$old"
if [ -n "$gate" ]; then
  echo $$ > "$gate/hook.pid.tmp"
  mv "$gate/hook.pid.tmp" "$gate/hook.pid"
  cat "$gate/release" > /dev/null
fi
)SH";

}  // namespace kosli::test
