package rtc

// A published audio track's level, as its packets' audio level header
// extension tells it (hdrext.go), smoothed on the read loop and read by
// the room, which decides who speaks (actors/room_speakers.go). The read
// loop is the meter's one writer: per packet it moves two decaying
// averages a step and publishes them with one atomic store; a reader
// loads them whenever it likes, without a lock and without a message.

import "math"

// Smoothing of the level meter: each packet moves the averages
// 1/2^levelShift of the way to its own values, so that they follow the
// last 2^levelShift packets or so: about 160 ms of 20 ms Opus frames.
const levelShift = 3

// levelMeter is the read loop's state of the averages, in units of
// 1/256: loud is 127 minus the level in -dBov (0 for silence), voice the
// share of packets with the voice activity bit.
type levelMeter struct {
	loud, voice int32
	voiced      bool   // a packet had the voice activity bit set
	updates     uint32 // packets that carried a level
	// started: a packet has been taken; the first one sets the
	// averages rather than moving them from silence.
	started bool
}

// note takes one packet's audio level byte (the V bit and -dBov) and
// returns the averages packed for AudioLevel.
func (m *levelMeter) note(b uint8) uint64 {
	loud := int32(127-b&0x7f) << 8
	voice := int32(0)
	if b&0x80 != 0 {
		voice = 1 << 8
		m.voiced = true
	}
	if !m.started {
		m.loud, m.voice, m.started = loud, voice, true
	} else {
		m.loud += (loud - m.loud) >> levelShift
		m.voice += (voice - m.voice) >> levelShift
	}
	m.updates++
	return packLevel(m.loud, m.voice, m.voiced, m.updates)
}

// packLevel packs a meter's state into one word: loud and voice in the
// low 16 bits each, voiced in bit 32, updates in the top 31 bits.
func packLevel(loud, voice int32, voiced bool, updates uint32) uint64 {
	v := uint64(uint16(loud)) | uint64(uint16(voice))<<16 | uint64(updates&0x7fffffff)<<33
	if voiced {
		v |= 1 << 32
	}
	return v
}

// AudioLevel is a published audio track's level as its last packets'
// audio level header extension told it.
type AudioLevel struct {
	// DBov is the smoothed level in dB below full scale: 0 is the
	// loudest, 127 silence.
	DBov float64
	// Voice is the smoothed share, 0 to 1, of packets whose voice
	// activity bit was set; VoiceKnown says whether any packet has had
	// it set (a sender that never sets it is judged by its level).
	Voice      float64
	VoiceKnown bool
	// Updates counts the packets that carried a level, modulo 2^31: while
	// it does not move, the track sends no level (it is muted, silent
	// without packets, or its sender does not write the extension).
	Updates uint32
}

// Linear is the level on the scale of RTCRtpSynchronizationSource's
// audioLevel: 0 to 1, linear, 1 for 0 dBov.
func (l AudioLevel) Linear() float64 { return math.Pow(10, -l.DBov/20) }

func unpackLevel(v uint64) AudioLevel {
	if v == 0 {
		return AudioLevel{DBov: 127}
	}
	return AudioLevel{
		DBov:       127 - float64(uint16(v))/256,
		Voice:      float64(uint16(v>>16)) / 256,
		VoiceKnown: v&(1<<32) != 0,
		Updates:    uint32(v >> 33),
	}
}

// AudioLevel returns the track's smoothed audio level; a track whose
// packets never carried one (video, or a sender without the extension)
// has DBov 127 and Updates 0.
func (f *Forwarder) AudioLevel() AudioLevel { return unpackLevel(f.level.Load()) }
