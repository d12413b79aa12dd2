#!/bin/sh
# Makes the encoded clips the recorder's tests publish, with Debian's ffmpeg
# (run from this directory: sh make.sh). The clips are kept in the tree, so
# that the tests publish the same media on every machine.
set -eu
ff="ffmpeg -v error -y"
# 4 s of a moving test pattern (keyframe every second, as a browser after a
# PLI) and a 440 Hz tone, in the codecs WebRTC uses.
$ff -f lavfi -i testsrc2=size=320x240:rate=30:duration=4 \
	-c:v libvpx -b:v 300k -g 30 -keyint_min 30 -deadline realtime -cpu-used 8 -auto-alt-ref 0 vp8.ivf
$ff -f lavfi -i testsrc2=size=320x240:rate=30:duration=4 \
	-c:v libx264 -profile:v baseline -bf 0 -pix_fmt yuv420p -b:v 300k \
	-x264-params keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 h264.h264
$ff -f lavfi -i sine=frequency=440:sample_rate=48000:duration=4 \
	-ac 2 -c:a libopus -b:a 32k -frame_duration 20 -page_duration 20000 opus.ogg
# A/V sync: black video with a white frame at 1 s and 2.5 s, silence with a
# 40 ms beep at the same instants.
$ff -f lavfi -i "color=black:size=160x120:rate=30:duration=4,format=yuv420p,geq=lum='if(between(T,0.99,1.02)+between(T,2.49,2.52),235,16)':cb=128:cr=128" \
	-c:v libvpx -b:v 100k -g 30 -keyint_min 30 -deadline realtime -cpu-used 8 -auto-alt-ref 0 sync_vp8.ivf
$ff -f lavfi -i "aevalsrc='if(between(t,1,1.04)+between(t,2.5,2.54),0.8*sin(2*PI*1000*t),0)':s=48000:d=4" \
	-ac 2 -c:a libopus -b:a 32k -frame_duration 20 -page_duration 20000 sync_opus.ogg
# VP9 (profile 0, one spatial layer, as browsers send it by default).
$ff -f lavfi -i testsrc2=size=320x240:rate=30:duration=4 \
	-c:v libvpx-vp9 -b:v 300k -g 30 -keyint_min 30 -deadline realtime -cpu-used 8 -row-mt 1 -lag-in-frames 0 vp9.ivf
