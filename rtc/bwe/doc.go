// Package bwe is a send-side bandwidth estimator: what a receiver's
// transport-wide congestion control feedback says its link can take.
//
// It follows the published design of Google Congestion Control
// (draft-ietf-rmcat-gcc): a delay-based estimate (packets grouped by
// send time, the growth of their one-way delay fitted by a trendline over
// the last groups, an over-use detector with a threshold that adapts to
// the delay's noise, and an additive-increase multiplicative-decrease rate
// controller), bounded by a loss-based estimate, with the bitrate the
// receiver acknowledges as the ceiling of any increase. The loss of the
// packets sent while the caller probes the link (Estimator.Probing) is
// left out of the loss-based estimate: it is the probe's answer.
//
// It is made for a sender that forwards media as it comes: an Estimator
// paces nothing and starts no goroutine. The send path records each
// packet in a ring indexed by its transport-wide sequence number (a claim
// and one atomic store of a word holding all the feedback needs of it, no
// lock, no allocation: Estimator.Sending), and each
// feedback report is read where it lies in the RTCP packet
// (ParseFeedback, no allocation) and processed on the goroutine that read
// it (Estimator.Feedback).
//
// Package rtc uses it for each subscriber's connection; it imports
// nothing of Troupe.
package bwe
