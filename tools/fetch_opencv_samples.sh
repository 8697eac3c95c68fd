#!/usr/bin/env bash
# OpenCV's sample images (stereo chessboard set left01..14/right01..14, vtest.avi, ...)
# from Debian's opencv-doc package, unpacked into DEST without installing the package.
# The calibration tests read them through GO_STORE_OPENCV_DATA.
set -euo pipefail
dest=$(realpath -m "${1:?usage: fetch_opencv_samples.sh DEST}")
data="$dest/usr/share/doc/opencv-doc/examples/data"
[ -f "$data/left01.jpg" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download opencv-doc >/dev/null 2>&1; then
  sudo=''
  [ "$(id -u)" -eq 0 ] || sudo='sudo'
  $sudo apt-get update -qq
  apt-get download opencv-doc
fi
mkdir -p "$dest"
dpkg -x opencv-doc_*.deb "$dest"
# Keep only the sample data: the HTML documentation is most of the package.
find "$dest/usr/share/doc/opencv-doc" -mindepth 1 -maxdepth 1 ! -name examples -exec rm -rf {} +
[ -f "$data/left01.jpg" ] || [ -f "$data/left01.jpg.gz" ]
echo "OpenCV samples in $data"
