package browsertest

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// voiceRate is the sample rate of the fake microphone's recording.
const voiceRate = 48000

// writeVoice writes, in dir, a recording for the fake microphone: two
// seconds of something a speech detector takes for a voice, syllables of a
// harmonic sound whose pitch moves, 220 ms each with 80 ms between them.
// Chromium's own fake microphone beeps for a few tens of milliseconds a
// second, too little for a room to tell that anyone speaks. It returns
// the WAV file's path.
func writeVoice(t *testing.T, dir string) string {
	t.Helper()
	const seconds, syllable, gap = 2.0, 0.22, 0.08
	n := int(seconds * voiceRate)
	pcm := make([]byte, 2*n)
	phase := 0.0
	for i := range n {
		at := float64(i) / voiceRate
		in := math.Mod(at, syllable+gap)
		var v float64
		if in < syllable {
			k := math.Floor(at / (syllable + gap))
			pitch := 140 + 40*math.Sin(k*1.7) + 30*in/syllable // a rising syllable, each at its own pitch
			phase += 2 * math.Pi * pitch / voiceRate
			envelope := math.Sin(math.Pi * in / syllable)
			for h := 1.0; h <= 8; h++ {
				v += math.Sin(h*phase) / h
			}
			v *= 0.25 * envelope
		}
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16(v*math.MaxInt16)))
	}
	var wav []byte
	wav = append(wav, "RIFF"...)
	wav = binary.LittleEndian.AppendUint32(wav, uint32(36+len(pcm)))
	wav = append(wav, "WAVEfmt "...)
	wav = binary.LittleEndian.AppendUint32(wav, 16) // the fmt chunk's size
	wav = binary.LittleEndian.AppendUint16(wav, 1)  // PCM
	wav = binary.LittleEndian.AppendUint16(wav, 1)  // mono
	wav = binary.LittleEndian.AppendUint32(wav, voiceRate)
	wav = binary.LittleEndian.AppendUint32(wav, 2*voiceRate) // bytes per second
	wav = binary.LittleEndian.AppendUint16(wav, 2)           // bytes per frame
	wav = binary.LittleEndian.AppendUint16(wav, 16)          // bits per sample
	wav = append(wav, "data"...)
	wav = binary.LittleEndian.AppendUint32(wav, uint32(len(pcm)))
	wav = append(wav, pcm...)
	path := filepath.Join(dir, "voice.wav")
	if err := os.WriteFile(path, wav, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
