// Package turnserver is Troupe's built-in TURN server (RFC 8656, on
// pion/turn): a relay for the clients that reach the media server neither
// directly over UDP nor over ICE TCP, such as those behind a firewall that
// lets only a TLS port out.
//
// It is a TURN server for one SFU, not a public relay:
//
//   - Credentials are short-lived and derived from a secret (the API
//     secret), in the time-limited scheme most TURN servers and clients
//     know: the username is "<expiry unix time>:<user>" and the password
//     base64(HMAC-SHA1(secret, username)). Nothing is stored; a username
//     past its expiry, or a password that is not its HMAC, is refused.
//     An allocation whose credentials expire cannot be refreshed: it ends
//     at the next refresh after the expiry.
//   - A relay sends only to the addresses the owner allows (AllowPeer):
//     the media server's own UDP port. A client can reach nothing else
//     through it, not the server's other ports nor its private network.
//     A client has no other use for a relay here, since it talks to the
//     SFU alone; relaying to any address would make the server an open
//     proxy for anyone who joins a room.
//   - Each user holds a bounded number of allocations at once
//     (MaxAllocationsPerUser), and only UDP relays are made (no RFC 6062
//     TCP allocations, which browsers do not use).
//
// Clients reach it over UDP (turn:host:port?transport=udp) and, when
// given a TLS configuration, over TLS (turns:host:port?transport=tcp),
// which passes firewalls that let only HTTPS out.
//
// It imports nothing of Troupe's; the rtc Engine starts it when
// configured.
package turnserver
