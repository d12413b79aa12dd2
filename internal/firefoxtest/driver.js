// The Firefox tests' driver: the Front adds it to the pages it serves.
// Every 200 ms it posts what the page shows (window.troupe, its RTP
// streams, its SDP) to the Front, and does the commands the Front answers
// with (clicks, values typed, forms submitted), each once, in order. It is no part of the
// web page: only the tests' Front serves it.
'use strict';
(() => {
  const page = new URL(document.currentScript.src).searchParams.get('page');
  const interval = 200;
  const maxErrors = 20;
  const errors = [];
  const fault = (text) => {
    errors.push(String(text));
    if (errors.length > maxErrors) errors.shift();
  };
  addEventListener('error', (e) => fault(`error: ${e.message} (${e.filename}:${e.lineno})`));
  addEventListener('unhandledrejection', (e) => fault(`unhandled rejection: ${e.reason}`));
  let done = 0; // the last command done

  function run(cmd) {
    const el = document.getElementById(cmd.id);
    if (!el) throw new Error(`no element #${cmd.id}`);
    switch (cmd.op) {
      case 'click':
        el.click();
        break;
      case 'submit':
        el.requestSubmit();
        break;
      case 'set':
        el.value = cmd.value;
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
        break;
      default:
        throw new Error(`unknown command ${cmd.op}`);
    }
  }

  // rtp lists the connection's RTP streams, each with its codec.
  async function rtp(pc) {
    const out = { inbound: [], outbound: [] };
    if (!pc || pc.signalingState === 'closed') return out;
    const report = await pc.getStats();
    const codecs = new Map();
    report.forEach((s) => {
      if (s.type === 'codec') codecs.set(s.id, s.mimeType);
    });
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp') return;
      const inbound = s.type === 'inbound-rtp';
      (inbound ? out.inbound : out.outbound).push({
        kind: s.kind, ssrc: s.ssrc, rid: s.rid || '', mimeType: codecs.get(s.codecId) || '',
        packets: (inbound ? s.packetsReceived : s.packetsSent) || 0,
        frames: (inbound ? s.framesDecoded : s.framesEncoded) || 0,
        width: s.frameWidth || 0, height: s.frameHeight || 0,
        pli: s.pliCount || 0, fir: s.firCount || 0, nack: s.nackCount || 0,
      });
    });
    return out;
  }

  // encodings are the camera's sender's encodings (its simulcast layers).
  function encodings(t) {
    const cam = t.local && t.local.getVideoTracks()[0];
    if (!t.pc || !cam || t.pc.signalingState === 'closed') return [];
    const sender = t.pc.getSenders().find((s) => s.track === cam);
    if (!sender) return [];
    return (sender.getParameters().encodings || []).map((e) => ({
      rid: e.rid || '', active: e.active !== false,
      scaleResolutionDownBy: e.scaleResolutionDownBy || 1, maxBitrate: e.maxBitrate || 0,
    }));
  }

  async function report() {
    const t = window.troupe;
    const notice = document.getElementById('notice');
    const body = { done, errors: errors.slice(), notice: notice ? notice.textContent : '' };
    if (t) {
      const pc = t.pc;
      Object.assign(body, {
        state: t.state, connection: t.connection, participantId: t.participantId || '',
        stats: await t.stats(), ...(await rtp(pc)), encodings: encodings(t), layers: t.layers,
        chat: t.chat.map((m) => ({ name: m.name, text: m.text })),
        transceivers: pc && pc.signalingState !== 'closed' ? pc.getTransceivers().map((tr) => ({
          mid: tr.mid || '', kind: tr.receiver.track.kind, direction: tr.direction, currentDirection: tr.currentDirection || '',
          receiving: !tr.receiver.track.muted,
        })) : [],
        localSdp: (pc && pc.localDescription && pc.localDescription.sdp) || '',
        remoteSdp: (pc && pc.remoteDescription && pc.remoteDescription.sdp) || '',
      });
    }
    const r = await fetch('/firefoxtest/report?' + new URLSearchParams({ page }), {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`report: ${r.status} ${await r.text()}`);
    for (const cmd of await r.json()) {
      if (cmd.seq <= done) continue;
      try {
        run(cmd);
      } catch (err) {
        fault(`command ${cmd.seq} (${cmd.op} #${cmd.id}): ${err}`);
      }
      done = cmd.seq;
    }
  }

  async function loop() {
    try {
      await report();
    } catch (err) {
      fault(err);
    }
    setTimeout(loop, interval);
  }
  loop();
})();
