#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Measures one 1080p-to-360p transcode: CimsTranscoder against the same
# GStreamer pipeline run alone by gst-launch-1.0, on the same input file.
#
# Usage: bench/transcode-cost.sh BUILD_DIR [SECONDS]
#   BUILD_DIR  a configured and built meson directory (libcims-pipelines.a)
#   SECONDS    input length, default 20
# With CIMS_TEST_FOOTAGE set to an AVI file (MPEG-4 part 2), the input is
# that footage scaled to 1920x1080. Without it, the input is a moving
# zone-plate pattern at 30 fps.
set -eu

build_dir=${1:?usage: bench/transcode-cost.sh BUILD_DIR [SECONDS]}
seconds=${2:-20}
source_dir=$(cd "$(dirname "$0")/.." && pwd)
work_dir=$(mktemp -d /tmp/cims-transcode-cost.XXXXXX)
trap 'rm -rf "$work_dir"' EXIT

if [ -n "${CIMS_TEST_FOOTAGE:-}" ] && [ -r "$CIMS_TEST_FOOTAGE" ]; then
  source="filesrc location=$CIMS_TEST_FOOTAGE ! avidemux ! avdec_msmpeg4v3 ! identity eos-after=$((seconds * 10)) ! videoconvert ! videoscale"
  frame_rate=10
  input_name="footage $(basename "$CIMS_TEST_FOOTAGE") scaled to 1920x1080 at 10 fps"
else
  frame_rate=30
  source="videotestsrc pattern=zone-plate kt=2 kx2=20 ky2=20 num-buffers=$((seconds * frame_rate))"
  input_name="videotestsrc zone-plate 1920x1080 at 30 fps"
fi

# The input: H.264 high profile at 4 Mbit/s with a 2 s keyframe interval,
# as a camera would send it.
gst-launch-1.0 -q $source \
  ! video/x-raw,format=I420,width=1920,height=1080 ! videorate ! video/x-raw,framerate=$frame_rate/1 \
  ! x264enc bitrate=4000 key-int-max=$((frame_rate * 2)) speed-preset=veryfast \
  ! video/x-h264,profile=high ! h264parse ! matroskamux ! filesink location="$work_dir/input.mkv"

# The driver links the pipelines library of BUILD_DIR. It is compiled here,
# so the bench stays out of the meson build.
cc -O2 -std=c11 -D_GNU_SOURCE -I"$source_dir" -o "$work_dir/transcode-cost" "$source_dir/bench/transcode-cost.c" \
  "$build_dir/pipelines/libcims-pipelines.a" \
  $(pkg-config --cflags --libs gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 gstreamer-rtp-1.0 \
    gstreamer-rtsp-1.0 gstreamer-sdp-1.0 glib-2.0)

echo "machine: nproc=$(nproc) cpu=\"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)\""
echo "gstreamer: $(gst-launch-1.0 --version | sed -n 's/^GStreamer //p')"
echo "input: $input_name, H.264 high 4 Mbit/s, ${seconds} s"
echo "output: H.264 constrained baseline 640x360 at up to 15 fps, 600 kbit/s"
"$work_dir/transcode-cost" "$work_dir/input.mkv" "$seconds"
