#!/usr/bin/env bash
# Gathers what the lent GPU machine lacks into one git-ignored folder that travels with the
# device tool's `carry`: wheels of our dependencies missing from its image (for its Python 3.12),
# at the versions installed here, and the Fashion-MNIST files. Run it here, where pip reaches PyPI.
#
#   bash bench/gpu_pack.sh              # -> .gpu_pack/ (about 36 MB; the carry limit is 64 MiB)
#   bash bench/gpu_pack.sh DIR          # somewhere else
#
# The image already holds torch, numpy, scikit-learn, tqdm, PyYAML, packaging, MarkupSafe and
# typing-extensions (what the wheels below require besides each other); these are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PACK="${1:-.gpu_pack}"
PYTHON="${PYTHON:-python3}"
MISSING=(optuna ptflops SQLAlchemy alembic Mako colorlog)
DEVICE_PYTHON=3.12

pins=()
for name in "${MISSING[@]}"; do
  version="$("$PYTHON" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' \
    "$name")" || { echo "error: $name is not installed here: pip install -e . first" >&2; exit 2; }
  pins+=("$name==$version")
done

rm -rf "$PACK.partial"
mkdir -p "$PACK.partial/wheels" "$PACK.partial/fashion-mnist"
# The platforms pip must match exactly for a compiled wheel (SQLAlchemy's) on that machine.
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$PACK.partial/wheels" "${pins[@]}"

DATA="${NAS_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
for file in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
  t10k-labels-idx1-ubyte; do
  if [ -f "$DATA/$file.gz" ]; then
    cp "$DATA/$file.gz" "$PACK.partial/fashion-mnist/"
  elif [ -f "$DATA/$file" ]; then
    cp "$DATA/$file" "$PACK.partial/fashion-mnist/"
  else
    echo "error: no Fashion-MNIST $file in $DATA: apt install dataset-fashion-mnist," \
      "or set NAS_DATA_DIR" >&2
    rm -rf "$PACK.partial"
    exit 2
  fi
done
printf '%s\n' "${pins[@]}" > "$PACK.partial/pins.txt"

# Replaced only once complete: an interrupted pack never leaves a half folder to carry.
rm -rf "$PACK"
mv "$PACK.partial" "$PACK"
echo "packed $(du -sh "$PACK" | cut -f1) into $PACK: ${pins[*]} and Fashion-MNIST"
