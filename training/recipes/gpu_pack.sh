#!/usr/bin/env bash
# Here, once before a device session (docs/PERFORMANCE.md, "Training on the GPU"): everything the GPU machine lacks,
# in the git-ignored .gpu/ that a device call carries (carry [".gpu"]):
#   .gpu/run.sh, .gpu/whl/     ../shared/gpu/fetch-wheels.sh: diffusers, OpenImageIO, OpenColorIO, ...
#   .gpu/mitsuba.tar.xz        Mitsuba and Dr.Jit for the device's Python 3.12, the same versions as
#                              here, cut to what `rf-train synth` renders with (below): ~16 MB
# A device call carries 64 MiB in all, the working tree included (~19 MB); Mitsuba's own wheel is
# 62 MB (every variant, spectral data, every plugin), so it travels cut down. The cut was checked by
# rendering every preset with it and comparing against the full install (same pixels up to Mitsuba's
# ~1e-7 thread-order noise); a plugin missing from the list makes `rf-train synth` fail naming it.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
# the RGB variants `rf-train synth --variant` offers, and the plugins its scenes instantiate
VARIANTS="scalar_rgb llvm_ad_rgb cuda_ad_rgb"
PLUGINS="aov bitmap box checkerboard cube cylinder d65 diffuse envmap gaussian hdrfilm independent
irregular merge path perspective ply principled rectangle regular sphere srgb stratified uniform"

bash ../shared/gpu/fetch-wheels.sh
mitsuba_version=$($PYTHON -c "import mitsuba; print(mitsuba.__version__)")
drjit_version=$($PYTHON -c "import drjit; print(drjit.__version__)")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$PYTHON -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$work/whl" "mitsuba==$mitsuba_version" "drjit==$drjit_version"
mkdir -p "$work/site/mitsuba/plugins"
for wheel in "$work"/whl/*.whl; do unzip -q -o "$wheel" -d "$work/site"; done
site="$work/site"
rm -rf "$site"/drjit/{include,cmake} "$site"/mitsuba/{include,cmake,pkgconfig,mitsuba_stubs,data}
for module in "$site"/mitsuba/*_rgb.cpython-* "$site"/mitsuba/*_mono*.cpython-* "$site"/mitsuba/*_spectral*.cpython-*; do
    variant=$(basename "$module" | cut -d. -f1)
    case " $VARIANTS " in *" $variant "*) ;; *) rm "$module" ;; esac
done
mkdir "$work/plugins"
mv "$site"/mitsuba/plugins/*.so "$work/plugins/"
for plugin in $PLUGINS; do mv "$work/plugins/$plugin.so" "$site/mitsuba/plugins/"; done
mkdir -p .gpu
tar -cJf .gpu/mitsuba.tar.xz -C "$site" drjit mitsuba
echo "Mitsuba $mitsuba_version, Dr.Jit $drjit_version ($VARIANTS): $(du -h .gpu/mitsuba.tar.xz | cut -f1)"
tree_bytes=$(git ls-files -z | xargs -0 du -cb | tail -n 1 | cut -f1)
gpu_bytes=$(du -sb .gpu | cut -f1)
echo "a device call carries $(((tree_bytes + gpu_bytes) / 1048576)) MiB of its 64: tree $((tree_bytes / 1048576)), .gpu $((gpu_bytes / 1048576))"
