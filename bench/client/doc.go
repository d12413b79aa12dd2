// Package client is a Troupe signaling client on a pion peer connection:
// it joins a room over the WebSocket signaling of docs/signaling.md,
// publishes tracks with its own offers, answers the server's offers as the
// impolite peer, trickles ICE candidates both ways and asks for keyframes
// while an offered video track has not started, as a browser does. The
// media benchmark runs hundreds of them; anything that needs a scripted
// participant can use it.
package client
