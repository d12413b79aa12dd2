// Troupe's web client. A pre-join screen shows the camera's preview and
// lets one choose the camera, microphone and speaker and give a name;
// then the page joins the room over the signaling WebSocket and shows
// everyone in a grid that fills the window (or a speaker view), with
// names, muted and speaking marks, screen sharing, a participant list,
// raised hands and the chat. One RTCPeerConnection carries everything.
// The server renegotiates when tracks come and go; this page is the
// impolite peer of perfect negotiation (on glare it keeps its own offer
// and the server rolls back). When the connection drops for a reason that
// is not final (a node of a cluster died, the server restarted), the page
// joins again by itself with a new peer connection, as docs/signaling.md
// says clients should.
//
// A room's link (/rooms/{id}) is all a person needs: with ?token= it joins
// with that token; without, a public room's server mints one
// (POST /rooms/{id}/token), and a private room says it needs a token.
'use strict';

const $ = (id) => document.getElementById(id);
const tokenMode = document.querySelector('meta[name="troupe-token-mode"]').content;
const roomIDPattern = /^[A-Za-z0-9_-]{1,64}$/;
const pathRoom = (() => {
  const m = location.pathname.match(/^\/rooms\/([^/]+)$/);
  return m ? decodeURIComponent(m[1]) : '';
})();
// The link's ice=relay sends and receives media through the server's TURN
// relay only (iceTransportPolicy "relay"), never straight: for a network
// that lets the connectivity checks through but not the media, or where
// only a TLS port gets out. Any other value is refused when the page loads.
const iceOption = new URLSearchParams(location.search).get('ice');
const relayOnly = iceOption === 'relay';
const badICEOption = iceOption === null || relayOnly ? '' : `This link's ice=${iceOption} is not an option (ice=relay is the only one): open the link without it.`;

// window.troupe is the page's state, for people debugging it and for tests.
const troupe = (window.troupe = {
  state: 'idle', // idle | joining | joined | reconnecting | left | closed
  reconnects: 0, // joins again after a lost connection
  attempt: 0, // the current attempt to join again, while reconnecting
  signaling: 'closed',
  connection: 'new',
  participantId: null,
  role: null,
  pc: null,
  ws: null,
  local: null, // the camera and microphone, once joining
  preview: null, // the pre-join screen's camera and microphone
  screen: null, // the screen being shared, a MediaStream
  layers: null, // the last layers message: which of the camera's layers anyone watches
  dc: null, // the reliable data channel: chat goes out on it
  hands: [], // the raised hands, in the order they were raised
  prioritizeHands: false,
  toneOnEntry: false,
  chat: [], // the chat messages shown, oldest first
  roomLayout: 'grid', // the room's layout hint, as the page knows it: grid or speaker
  chosenView: null, // grid or speaker when the person chose one, else null
  view: 'grid', // the view shown
  featured: null, // the key of the tile the speaker view shows large
  speakers: [], // who speaks now, loudest first: [{participant_id, level}]
  spoke: 0, // updates of speakers that named someone, for tests
  refused: null, // the error code of the last refused join
  // stats sums the inbound RTP the page has received so far.
  async stats() {
    const out = {
      videoFramesDecoded: 0, videoPacketsReceived: 0, videoKeyRequests: 0,
      audioPacketsReceived: 0, inboundVideo: 0, inboundAudio: 0,
      videoSizes: [], // the picture size of each video stream received, as decoded
    };
    if (!troupe.pc) return out;
    const report = await troupe.pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.inboundVideo++;
        out.videoFramesDecoded += s.framesDecoded || 0;
        out.videoPacketsReceived += s.packetsReceived || 0;
        out.videoKeyRequests += (s.pliCount || 0) + (s.firCount || 0);
        if (s.frameWidth) out.videoSizes.push(`${s.frameWidth}x${s.frameHeight}`);
      } else if (s.kind === 'audio') {
        out.inboundAudio++;
        out.audioPacketsReceived += s.packetsReceived || 0;
      }
    });
    return out;
  },
});

// Everyone in the room, this page included: participant id -> {id, info,
// stream, tile, screenTile, paused}. info is what the server says of them,
// stream what it sends (every track of theirs), paused the ids of their
// tracks the server stopped sending, with why (bandwidth, subscriber).
const people = new Map();
let chain = Promise.resolve(); // incoming messages, handled one at a time
let makingOffer = false;
let ignoreOffer = false;
// attempt counts joins and leaves, so that a join still waiting for a
// token or the camera when Leave is pressed gives up.
let attempt = 0;
// The join being kept up: its token (reused while valid), how to get a new
// one, and, while the connection is lost, the attempt to come back and
// its timers.
let session = null; // {token, room, name, mint, tries, timer, iceTimer}
let screenSender = null; // the RTCRtpSender of the shared screen
let levelTimer = null; // the audio level poll, when the server sends no active speakers

// Reconnecting waits 250 ms doubling to 5 s between attempts, each ±50% so
// that the pages of a lost node do not all come back at once, and gives up
// after reconnectTries attempts. ICE disconnected for iceGrace counts as
// lost; failed at once.
const backoffMin = 250;
const backoffMax = 5000;
const reconnectTries = 20;
const iceGrace = 5000;
// Without the server's active-speakers, the page reads the audio levels
// it receives this often, and someone above speakingLevel speaks.
const levelInterval = 500;
const speakingLevel = 0.01;

// The camera goes out in three layers (simulcast), lowest first; the
// server sends each viewer one of them, and says which ones nobody
// watches (the layers message) so that the browser stops encoding them.
// A camera too small for a layer gets fewer: the browser decides (Chromium
// sends three from 960x540 up, two from 480x270 up, one below), so the
// camera is asked for 720p, which most give and the others approach.
const cameraSize = { width: { ideal: 1280 }, height: { ideal: 720 } };
const cameraLayers = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1500000 },
];

// What each leave reason means to the person who left. Only faults are
// shown as errors: leaving, being removed or the room ending are not.
// Faults are not final: after them the page joins again.
const leaveReasons = {
  left: [false, 'You left the room.'],
  kicked: [false, 'A moderator removed you from the room.'],
  replaced: [false, 'You joined this room again from another page, so this one left.'],
  'room-ended': [false, 'The room has ended.'],
  'room-deleted': [false, 'The room was deleted.'],
  'session-ended': [false, 'The session has ended.'],
  'remove-after-elapsed': [false, 'Your time in this room is up.'],
  'remove-at': [false, 'The room closed at its set time.'],
  disconnected: [true, 'The server lost the connection to this page.'],
  'connection-failed': [true, 'The media connection failed.'],
  failed: [true, 'The server had a problem with this connection and closed it.'],
  'server-shutdown': [true, 'The server is shutting down.'],
  'room-failed': [true, 'The room failed on the server.'],
};

// What a refused join means, by the error's code.
const refusals = {
  room_ended: 'This room has ended: nobody can join it any more.',
  room_full: 'This room is full: nobody else can join now.',
  room_locked: 'This room is locked: only a moderator can join now.',
  outside_join_window: 'This room is not open for joining now: check when it opens.',
  // A private room's link without a token is answered as a missing room.
  room_not_found: 'There is no such room, or it is private: its link needs a join token. Check the link, ask for one with a token, or paste a token.',
  unauthorized: 'Your join token is not valid or has expired: ask for a new link.',
  forbidden: 'Your join token does not let you join this room.',
  rate_limited: 'Too many tries from here: wait a minute and join again.',
  draining: 'The server is restarting: try again in a moment.',
};

function refusal(code, message) {
  return refusals[code] || `The server refused the join: ${message || code}.`;
}

// finalClose tells whether a socket closed with code and reason must not
// be followed by a new join: a leave reason that is not a fault, a join
// refused for good (4000 + 401, 403, 404, 409...), or a protocol error.
function finalClose(code, reason) {
  if (code === 1000) return Boolean(leaveReasons[reason] && !leaveReasons[reason][0]);
  if (code === 1008) return reason !== 'too slow';
  if (code === 1009) return true;
  if (code >= 4000 && code < 5000) return ![4429, 4502, 4503, 4504].includes(code);
  return false; // 1001 going away, 1006 no close frame (a node that died), 1011-1014
}

// tokenExpired reads the JWT's exp without checking it (the server does).
function tokenExpired(token) {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now() + 5000;
  } catch (err) {
    return false;
  }
}

const inCall = () => troupe.state === 'joined' || troupe.state === 'reconnecting';

function showState() {
  $('state').textContent = `${troupe.state} · signaling ${troupe.signaling} · media ${troupe.connection}`;
  const busy = troupe.state === 'joining' || inCall();
  $('join').disabled = busy;
  $('join').textContent = troupe.state === 'joining' ? 'Joining…' : 'Join';
  $('leave').disabled = !busy;
  $('mute-audio').disabled = !busy || !troupe.local || troupe.local.getAudioTracks().length === 0;
  $('mute-video').disabled = !busy || !troupe.local || troupe.local.getVideoTracks().length === 0;
  const canPublish = troupe.role !== null && troupe.role !== 'subscriber';
  $('share').disabled = troupe.state !== 'joined' || !canPublish || !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  $('share').textContent = troupe.screen ? 'Stop sharing' : 'Share screen';
  $('share').setAttribute('aria-pressed', String(Boolean(troupe.screen)));
  $('hand').disabled = troupe.state !== 'joined';
  const raised = troupe.hands.some((h) => h.participant_id === troupe.participantId);
  $('hand').textContent = raised ? 'Lower hand' : 'Raise hand';
  $('hand').setAttribute('aria-pressed', String(raised));
  // The call replaces the pre-join screen once joined, and stays while
  // the page comes back after a lost connection.
  const call = inCall();
  $('prejoin').hidden = call;
  $('call').hidden = !call;
  $('controls').hidden = !call;
}

// showHands lists the raised hands and marks their tiles; with
// prioritize_handraise their tiles come first, in the order raised.
function showHands(hands, prioritize) {
  troupe.hands = hands;
  troupe.prioritizeHands = prioritize;
  $('hands').hidden = hands.length === 0;
  $('hands').textContent = hands.length ? 'Hands up: ' + hands.map((h) => h.name || h.identity).join(', ') : '';
  people.forEach(markHand);
  renderPeople();
  layoutTiles();
  showState();
}

function markHand(p) {
  if (!p.tile) return;
  p.tile.classList.toggle('hand', handAt(p) >= 0);
}

const handAt = (p) => troupe.hands.findIndex((h) => h.participant_id === p.id);

function showChat(msg) {
  troupe.chat.push(msg);
  const li = document.createElement('li');
  const who = document.createElement('b');
  who.textContent = (msg.name || msg.identity || 'server') + ': ';
  li.append(who, document.createTextNode(msg.text));
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
}

// tone plays a short beep when someone enters or leaves, if the room asks.
function tone(freq) {
  if (!troupe.toneOnEntry || !window.AudioContext) return;
  const ctx = (tone.ctx = tone.ctx || new AudioContext());
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  gain.gain.value = 0.05;
  osc.frequency.value = freq;
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  osc.stop(ctx.currentTime + 0.15);
}

// showNotice tells what happened; a fault is shown as an error.
function showNotice(text, fault) {
  const n = $('notice');
  n.textContent = text || '';
  n.classList.toggle('fault', Boolean(text && fault));
  n.setAttribute('role', text && fault ? 'alert' : 'status');
}

function send(msg) {
  if (troupe.ws && troupe.ws.readyState === WebSocket.OPEN) troupe.ws.send(JSON.stringify(msg));
}

// keepInURL puts the room and name in the address, so that a reload comes
// back ready to join again. The token never goes there: a token given in
// the link is kept for this tab only (sessionStorage).
function keepInURL(room, name) {
  const q = new URLSearchParams(name ? { name } : {});
  if (relayOnly) q.set('ice', 'relay');
  history.replaceState(null, '', '/rooms/' + encodeURIComponent(room) + (q.size ? '?' + q : ''));
}

// ---- The pre-join screen: preview and devices ----

// previewing is the preview being started, if it is.
let previewing = null;

// startPreview gets the chosen camera and microphone and shows the camera.
// Without either (none there, or refused) the page can still join to
// watch. It is what join uses: the devices are asked for once.
function startPreview() {
  if (previewing) return previewing;
  const cam = $('camera').value;
  const mic = $('microphone').value;
  const want = {
    video: cam === 'off' ? false : { ...cameraSize, ...(cam ? { deviceId: { exact: cam } } : {}) },
    audio: mic === 'off' ? false : mic ? { deviceId: { exact: mic } } : true,
  };
  const mine = (previewing = (async () => {
    let stream = null;
    if (!navigator.mediaDevices) {
      // Browsers give cameras only to pages over HTTPS or on localhost.
      showNotice('This page is not served over HTTPS, so the browser gives it no camera or microphone: you can join to watch and listen.', true);
    } else if (want.video || want.audio) {
      try {
        stream = await navigator.mediaDevices.getUserMedia(want);
      } catch (err) {
        showNotice(`No camera or microphone (${err.name}): you can join to watch and listen.`, true);
      }
    }
    if (previewing !== mine || inCall()) {
      // Superseded: another choice, or a call that has its devices.
      if (stream) stream.getTracks().forEach((t) => t.stop());
      return null;
    }
    troupe.preview = stream;
    $('preview').srcObject = stream;
    $('preview-box').classList.toggle('off', !stream || stream.getVideoTracks().length === 0);
    await listDevices(stream).catch(() => {}); // the choices stay as they were
    return stream;
  })());
  mine.finally(() => {
    if (previewing === mine) previewing = null;
  });
  return mine;
}

// restartPreview lets go of the preview's devices and starts it again
// with the ones now chosen.
function restartPreview() {
  if (inCall() || troupe.state === 'joining') return;
  previewing = null;
  stopPreview();
  startPreview();
}

function stopPreview() {
  if (troupe.preview && troupe.preview !== troupe.local) troupe.preview.getTracks().forEach((t) => t.stop());
  troupe.preview = null;
  $('preview').srcObject = null;
}

// listDevices fills the device choices, keeping what is chosen (or in use).
async function listDevices(stream) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const inUse = (kind) => {
    const t = stream && (kind === 'videoinput' ? stream.getVideoTracks() : stream.getAudioTracks())[0];
    return t && t.getSettings ? t.getSettings().deviceId : '';
  };
  const fill = (select, kind, none) => {
    const keep = select.value || inUse(kind);
    select.replaceChildren();
    devices.filter((d) => d.kind === kind).forEach((d, i) => {
      select.append(new Option(d.label || `${kind === 'audiooutput' ? 'Speaker' : kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`, d.deviceId));
    });
    if (none) select.append(new Option(none, 'off'));
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  };
  fill($('camera'), 'videoinput', 'No camera');
  fill($('microphone'), 'audioinput', 'No microphone');
  const sinks = 'setSinkId' in HTMLMediaElement.prototype;
  $('speaker-field').hidden = !sinks || !devices.some((d) => d.kind === 'audiooutput');
  if (sinks) fill($('speaker'), 'audiooutput', '');
}

// useSpeaker plays video's sound on the chosen speaker.
function useSpeaker(video) {
  const id = $('speaker').value;
  if (id && video.setSinkId && video.sinkId !== id) video.setSinkId(id).catch(() => {});
}

// ---- People and tiles ----

function person(id) {
  let p = people.get(id);
  if (!p) {
    p = { id, info: null, stream: null, tile: null, screenTile: null, paused: new Map(), asked: {} };
    people.set(id, p);
  }
  return p;
}

const isSelf = (p) => p.id === troupe.participantId;
const nameOf = (info) => info.name || info.identity;

// screenTracks are the ids of p's video tracks that are screen shares:
// those the server names so (source), or else every video track after
// the first, the camera, which a page publishes when it joins.
function screenTracks(p) {
  if (isSelf(p)) return troupe.screen ? troupe.screen.getVideoTracks().map((t) => t.id) : [];
  const video = (p.info.tracks || []).filter((t) => t.kind === 'video');
  if (video.some((t) => t.source)) return video.filter((t) => /screen/.test(t.source)).map((t) => t.id);
  return video.slice(1).map((t) => t.id);
}

// publishes tells whether p sends anything: those who only watch get no
// tile, only a mention in the viewers' line.
function publishes(p) {
  if (isSelf(p)) return Boolean(troupe.local) && troupe.role !== 'subscriber';
  return (p.info.tracks || []).length > 0;
}

function mutedKinds(p) {
  if (isSelf(p)) {
    return ['audio', 'video'].filter((kind) => {
      const tracks = kind === 'audio' ? troupe.local.getAudioTracks() : troupe.local.getVideoTracks();
      return tracks.length > 0 && !tracks.some((t) => t.enabled);
    });
  }
  const screens = screenTracks(p);
  return [...new Set((p.info.tracks || []).filter((t) => t.muted && !screens.includes(t.id)).map((t) => t.kind))];
}

// showsVideo tells whether p's camera tile has a picture to show rather
// than a black box: a live camera that has sent a frame.
function showsVideo(p, video) {
  if (video.videoWidth === 0) return false;
  if (isSelf(p)) return troupe.local.getVideoTracks().some((t) => t.enabled);
  const screens = screenTracks(p);
  return (p.info.tracks || []).some((t) => t.kind === 'video' && !t.muted && !screens.includes(t.id));
}

// newTile makes a tile for p: its camera (and sound), or with screen its
// shared screen.
function newTile(p, screen) {
  const tile = document.createElement('div');
  tile.className = screen ? 'tile screen' : 'tile no-video';
  tile.dataset.participant = p.id;
  if (screen) tile.dataset.screen = '1';
  tile.setAttribute('role', 'group');
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = isSelf(p) || screen; // no echo of one's own microphone; the camera tile plays the sound
  // The first frame, or a new size, may turn the placeholder into video.
  const update = () => people.get(p.id) === p && render(p);
  video.addEventListener('resize', update);
  video.addEventListener('loadeddata', update);
  // A resize fires every frame while it lasts: the size is asked for
  // once it settles, so that a drag does not spend the socket's message
  // rate (the server refuses, then closes, a socket that floods it).
  if (!isSelf(p)) {
    let settle = 0;
    new ResizeObserver(() => {
      clearTimeout(settle);
      settle = setTimeout(() => askTileSize(p, tile), 200);
    }).observe(video);
  }
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  avatar.append(document.createElement('span'));
  const label = document.createElement('span');
  label.className = 'label';
  const paused = document.createElement('span');
  paused.className = 'paused';
  tile.append(video, avatar, label, paused);
  $('tiles').append(tile);
  useSpeaker(video);
  return tile;
}

// tileTracks are the ids of the video tracks tile shows.
function tileTracks(p, tile) {
  const screens = screenTracks(p);
  return (p.info.tracks || []).filter((t) => t.kind === 'video' && screens.includes(t.id) === Boolean(tile.dataset.screen)).map((t) => t.id);
}

// askTileSize asks the server for the layers of the simulcast video in
// tile that its size needs, in device pixels; a small tile gets a small
// layer. It runs when the tile's size changes and when a track arrives on
// it (a tile keeps its size when a camera comes after the microphone). A
// track not received yet is left alone: the server refuses settings for it.
function askTileSize(p, tile) {
  if (people.get(p.id) !== p || !p.info || !p.stream || !tile || troupe.state !== 'joined') return;
  const video = tile.querySelector('video');
  const scale = window.devicePixelRatio || 1;
  const width = Math.round(video.clientWidth * scale);
  const height = Math.round(video.clientHeight * scale);
  if (width < 1 || height < 1) return;
  const received = p.stream.getVideoTracks().map((t) => t.id);
  const ids = tileTracks(p, tile).filter((id) => received.includes(id));
  (p.info.tracks || []).forEach((t) => {
    if (!ids.includes(t.id) || !t.simulcast) return;
    const size = `${width}x${height}`;
    if (p.asked[t.id] === size) return;
    p.asked[t.id] = size;
    askSize(t.id, width, height);
  });
}

// Tile sizes go through one paced queue: a layout change asks for every
// tile at once, and the server refuses, then closes, a socket that sends
// more than its message rate (20 a second). The latest size of a track
// wins; at most sizeBatch go out every sizePace milliseconds.
const sizeAsks = new Map();
const sizeBatch = 8;
const sizePace = 500;
let sizeTimer = 0;

function askSize(trackId, width, height) {
  sizeAsks.set(trackId, { width, height });
  if (!sizeTimer) flushSizes();
}

function flushSizes() {
  sizeTimer = 0;
  let sent = 0;
  for (const [id, s] of sizeAsks) {
    if (sent === sizeBatch) break;
    sizeAsks.delete(id);
    sent++;
    send({ type: 'track-settings', track_id: id, width: s.width, height: s.height });
  }
  if (sent > 0) sizeTimer = setTimeout(flushSizes, sizePace);
}

function dropTile(tile) {
  if (!tile) return null;
  tile.querySelector('video').srcObject = null;
  tile.remove();
  return null;
}

// syncStream makes stream hold exactly tracks, adding and removing, so
// that a video element playing it goes on playing.
function syncStream(stream, tracks) {
  stream.getTracks().forEach((t) => tracks.includes(t) || stream.removeTrack(t));
  tracks.forEach((t) => stream.getTracks().includes(t) || stream.addTrack(t));
  return stream;
}

function setSource(video, src) {
  if (video.srcObject === src) return;
  video.srcObject = src;
  if (src) video.play().catch(() => {}); // autoplay may need a click; the tile still updates
}

// render shows p as it is now: a tile with video, a tile with their name
// when they send no picture, or no tile when they send nothing at all; and
// a second tile for a screen they share.
function render(p) {
  if (p.info && publishes(p)) {
    if (!p.tile) p.tile = newTile(p, false);
    const screens = screenTracks(p);
    let camSrc;
    let screenSrc = null;
    if (isSelf(p)) {
      camSrc = troupe.local;
      screenSrc = troupe.screen;
    } else if (p.stream) {
      const all = p.stream.getTracks();
      p.camStream = syncStream(p.camStream || new MediaStream(), all.filter((t) => !screens.includes(t.id)));
      const shared = all.filter((t) => screens.includes(t.id));
      if (shared.length) screenSrc = p.screenStream = syncStream(p.screenStream || new MediaStream(), shared);
      camSrc = p.camStream;
    }
    const video = p.tile.querySelector('video');
    setSource(video, camSrc || null);
    const name = nameOf(p.info);
    const muted = mutedKinds(p);
    const you = isSelf(p) ? `${name} (you)` : name;
    p.tile.classList.toggle('no-video', !showsVideo(p, video));
    showPaused(p, p.tile);
    markHand(p);
    p.tile.querySelector('.avatar span').textContent = Array.from(name)[0].toUpperCase();
    p.tile.querySelector('.label').textContent = you + (muted.length ? ` (${muted.join(', ')} muted)` : '');
    p.tile.setAttribute('aria-label', you + (muted.length ? `, ${muted.join(' and ')} muted` : ''));
    if (screenSrc) {
      if (!p.screenTile) p.screenTile = newTile(p, true);
      setSource(p.screenTile.querySelector('video'), screenSrc);
      p.screenTile.querySelector('.label').textContent = `${you}: screen`;
      p.screenTile.setAttribute('aria-label', `${name}'s shared screen`);
      showPaused(p, p.screenTile);
    } else {
      p.screenTile = dropTile(p.screenTile);
    }
  } else {
    p.tile = dropTile(p.tile);
    p.screenTile = dropTile(p.screenTile);
  }
  markSpeaking(p);
  renderViewers();
  renderPeople();
  layoutTiles();
  if (!isSelf(p)) {
    askTileSize(p, p.tile);
    askTileSize(p, p.screenTile);
  }
}

// showPaused marks a tile whose video the server stopped sending, and says why.
function showPaused(p, tile) {
  const id = tileTracks(p, tile).find((t) => p.paused.has(t));
  tile.classList.toggle('paused', id !== undefined);
  tile.querySelector('.paused').textContent = id === undefined ? '' : p.paused.get(id) === 'bandwidth' ? 'Paused: low bandwidth' : 'Paused';
}

function renderViewers() {
  const line = $('viewers');
  const viewers = [...people.values()].filter((p) => p.info && !publishes(p));
  line.replaceChildren();
  line.hidden = viewers.length === 0;
  if (line.hidden) return;
  line.append('Watching: ');
  viewers.forEach((p, i) => {
    const span = document.createElement('span');
    span.className = 'viewer';
    span.dataset.participant = p.id;
    span.textContent = isSelf(p) ? `${nameOf(p.info)} (you)` : nameOf(p.info);
    line.append(...(i ? [', ', span] : [span]));
  });
}

// renderPeople lists everyone in the room: raised hands first (in the
// order raised) when the room prioritizes them, then in join order.
function renderPeople() {
  const list = $('people');
  const all = [...people.values()].filter((p) => p.info);
  if (troupe.prioritizeHands) {
    all.sort((a, b) => {
      const ha = handAt(a);
      const hb = handAt(b);
      return (ha < 0 ? Infinity : ha) - (hb < 0 ? Infinity : hb);
    });
  }
  $('people-count').textContent = String(all.length);
  list.replaceChildren(...all.map((p) => {
    const li = document.createElement('li');
    li.dataset.participant = p.id;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = isSelf(p) ? `${nameOf(p.info)} (you)` : nameOf(p.info);
    const marks = [];
    if (handAt(p) >= 0) marks.push('hand raised');
    if (troupe.speakers.some((s) => s.participant_id === p.id)) marks.push('speaking');
    if (!publishes(p)) marks.push('watching');
    else mutedKinds(p).forEach((k) => marks.push(k === 'audio' ? 'mic off' : 'camera off'));
    if (screenTracks(p).length) marks.push('sharing screen');
    if (p.info.role === 'moderator') marks.push('moderator');
    const m = document.createElement('span');
    m.className = 'marks';
    m.textContent = marks.join(' · ');
    li.classList.toggle('speaking', marks.includes('speaking'));
    li.append(who, m);
    return li;
  }));
}

function addParticipant(info) {
  const p = person(info.id);
  p.info = info;
  render(p);
}

function removeParticipant(id) {
  const p = people.get(id);
  if (!p) return;
  p.tile = dropTile(p.tile);
  p.screenTile = dropTile(p.screenTile);
  people.delete(id);
  renderViewers();
  renderPeople();
  layoutTiles();
}

function updateTracks(participantId, fn) {
  const p = people.get(participantId);
  if (!p || !p.info) return;
  p.info.tracks = fn(p.info.tracks || []);
  render(p);
}

// ---- Layout: a grid that fills the window, or a speaker view ----

// The layouts a room may ask for, as this page shows them.
const speakerLayouts = ['speaker', 'sidebar', 'highlight-1-responsive', '1x1'];

// layoutTiles sizes the grid for the number of tiles and the space there
// is: the number of columns that makes the tiles (4:3, what cameras and
// the tiles' cropping make of most pictures) largest. In the
// speaker view, the featured tile (a shared screen, else who speaks, else
// the last who spoke) takes the top and the others a strip below.
function layoutTiles() {
  const box = $('tiles');
  const tiles = [...box.querySelectorAll('.tile')];
  const hasScreen = tiles.some((t) => t.dataset.screen);
  troupe.view = troupe.chosenView || (hasScreen ? 'speaker' : troupe.roomLayout);
  $('view').textContent = troupe.view === 'speaker' ? 'Grid view' : 'Speaker view';
  const speaker = troupe.view === 'speaker' && tiles.length > 1;
  box.classList.toggle('speaker-view', speaker);
  const featured = speaker ? pickFeatured(tiles) : null;
  troupe.featured = featured ? featured.dataset.participant + (featured.dataset.screen ? ':screen' : '') : null;
  tiles.forEach((t) => {
    t.classList.toggle('featured', t === featured);
    const p = people.get(t.dataset.participant);
    const at = p ? handAt(p) : -1;
    const handFirst = troupe.prioritizeHands && at >= 0 ? at - troupe.hands.length : 0;
    t.style.order = t === featured ? '-1000' : handFirst ? String(handFirst) : '';
  });
  const n = tiles.length;
  if (n === 0) return;
  const gap = 8;
  const w = box.clientWidth - 2 * gap;
  const h = box.clientHeight - 2 * gap;
  if (speaker) {
    const strip = Math.min(n - 1, Math.max(1, Math.floor(w / 160)));
    box.style.gridTemplateColumns = `repeat(${strip}, minmax(0, 1fr))`;
    box.style.gridTemplateRows = `minmax(0, 1fr) ${Math.max(72, Math.round(h * 0.2))}px`;
    box.style.justifyContent = 'stretch';
    return;
  }
  let best = { cols: 1, size: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cw = (w - (cols - 1) * gap) / cols;
    const ch = (h - (rows - 1) * gap) / rows;
    const size = Math.min(cw, (ch * 4) / 3); // the width of a 4:3 tile that fits
    if (size > best.size) best = { cols, size };
  }
  const rows = Math.ceil(n / best.cols);
  box.style.gridTemplateColumns = `repeat(${best.cols}, minmax(0, ${Math.floor(best.size)}px))`;
  box.style.gridTemplateRows = `repeat(${rows}, minmax(0, ${Math.floor((best.size * 3) / 4)}px))`;
  box.style.justifyContent = 'center';
}

function pickFeatured(tiles) {
  const screen = tiles.find((t) => t.dataset.screen);
  if (screen) return screen;
  const camera = (id) => tiles.find((t) => !t.dataset.screen && t.dataset.participant === id);
  const others = troupe.speakers.map((s) => s.participant_id).filter((id) => id !== troupe.participantId);
  for (const id of others) {
    if (camera(id)) return (pickFeatured.last = camera(id));
  }
  if (pickFeatured.last && tiles.includes(pickFeatured.last)) return pickFeatured.last;
  return tiles.find((t) => t.dataset.participant !== troupe.participantId) || tiles[0];
}

new ResizeObserver(() => layoutTiles()).observe($('tiles'));

// Wide, people and chat sit beside the call; on a phone they cover it, so
// they close when the window gets narrow, and open when it gets wide.
const wide = window.matchMedia('(min-width: 701px)');
wide.addEventListener('change', () => openSide(wide.matches));

// ---- Active speakers ----

// showSpeakers marks who speaks now (the server's active-speakers, or the
// levels the page hears), loudest first.
function showSpeakers(list) {
  const before = troupe.speakers.map((s) => s.participant_id).join(' ');
  troupe.speakers = list;
  if (list.length) troupe.spoke++;
  if (before === list.map((s) => s.participant_id).join(' ')) return;
  people.forEach(markSpeaking);
  renderPeople();
  layoutTiles();
}

function markSpeaking(p) {
  const speaking = troupe.speakers.some((s) => s.participant_id === p.id);
  if (p.tile) p.tile.classList.toggle('speaking', speaking);
}

// pollLevels reads the level of the sound of each audio track received
// (its inbound-rtp statistics: what the browser decodes, so it needs no
// header extension) and takes those above speakingLevel as speaking: the
// fallback for a server that sends no active-speakers.
async function pollLevels() {
  const pc = troupe.pc;
  if (!pc) return;
  const report = await pc.getStats();
  if (troupe.pc !== pc) return;
  const list = [];
  report.forEach((st) => {
    if (st.type !== 'inbound-rtp' || st.kind !== 'audio' || !(st.audioLevel >= speakingLevel)) return;
    for (const p of people.values()) {
      if (p.stream && p.stream.getTracks().some((t) => t.id === st.trackIdentifier)) {
        list.push({ participant_id: p.id, level: st.audioLevel });
      }
    }
  });
  list.sort((a, b) => b.level - a.level);
  showSpeakers(list);
}

// ---- The connection ----

// offerSources names the shared screen's section for the server (its
// grants judge it, and the others' pages show it as a screen); the server
// takes the sections left unnamed for the camera and the microphone.
function offerSources(pc) {
  const sources = {};
  for (const tr of pc.getTransceivers()) {
    if (screenSender && tr.sender === screenSender && tr.mid !== null) sources[tr.mid] = 'screen_share';
  }
  return sources;
}

function newPeerConnection(iceServers) {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? 'relay' : 'all', bundlePolicy: 'max-bundle' });
  pc.onicecandidate = ({ candidate }) => send({ type: 'candidate', candidate: candidate ? candidate.toJSON() : null });
  pc.onnegotiationneeded = async () => {
    try {
      makingOffer = true;
      await pc.setLocalDescription();
      const sources = offerSources(pc);
      send(Object.keys(sources).length ? { type: 'offer', sdp: pc.localDescription.sdp, sources } : { type: 'offer', sdp: pc.localDescription.sdp });
    } catch (err) {
      showNotice(`offer failed: ${err}`, true);
    } finally {
      makingOffer = false;
    }
  };
  pc.ontrack = ({ track, streams }) => {
    // The server sends each participant's tracks in one stream whose id
    // is the participant's id.
    const stream = streams[0] || new MediaStream([track]);
    const p = person(stream.id);
    if (p.stream !== stream) {
      p.stream = stream;
      const again = () => people.get(p.id) === p && render(p);
      stream.addEventListener('addtrack', again);
      stream.addEventListener('removetrack', again);
    }
    render(p);
  };
  pc.onconnectionstatechange = () => {
    if (troupe.pc !== pc) return;
    troupe.connection = pc.connectionState;
    showState();
    if (!session) return;
    clearTimeout(session.iceTimer);
    if (pc.connectionState === 'failed') {
      reconnect('the media connection failed');
    } else if (pc.connectionState === 'disconnected') {
      session.iceTimer = setTimeout(() => troupe.pc === pc && reconnect('the media connection was lost'), iceGrace);
    }
  };
  return pc;
}

// publish sends the camera and microphone (and a screen being shared).
function publish(pc) {
  if (troupe.local) {
    troupe.local.getTracks().forEach((t) => {
      if (t.kind === 'video') {
        pc.addTransceiver(t, { direction: 'sendrecv', streams: [troupe.local], sendEncodings: cameraLayers });
      } else {
        pc.addTrack(t, troupe.local);
      }
    });
  }
  screenSender = null;
  if (troupe.screen && troupe.role !== 'subscriber') {
    const t = troupe.screen.getVideoTracks()[0];
    if (t && t.readyState === 'live') screenSender = pc.addTrack(t, troupe.screen);
  }
}

// applyLayers stops encoding the camera's layers that the last layers
// message says nobody receives, and encodes again those it names active;
// a layer it does not name (the server has not seen it yet) stays on. It
// runs on each layers message and after each negotiation: a layer turned
// off while the server renegotiated (as someone joined) was seen on again
// in Chromium afterwards, and the server does not repeat a layers message
// that has not changed.
async function applyLayers(pc) {
  const l = troupe.layers;
  if (!l || !pc || pc.signalingState === 'closed') return;
  const tr = pc.getTransceivers().find((t) => t.mid === l.mid);
  if (!tr || !tr.sender.track) return;
  const params = tr.sender.getParameters();
  if (!params.encodings || params.encodings.length < 2) return;
  let changed = false;
  params.encodings.forEach((e) => {
    const active = l.active.includes(e.rid) || !l.paused.includes(e.rid);
    if (e.active !== active) {
      e.active = active;
      changed = true;
    }
  });
  if (changed) await tr.sender.setParameters(params);
}

async function onMessage(msg) {
  const pc = troupe.pc;
  switch (msg.type) {
    case 'joined': {
      if (relayOnly && !(msg.ice_servers || []).some((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u)))) {
        // Nothing could connect: say so rather than try again and again.
        showNotice('This link asks for media through a relay only (ice=relay), but the server offers no TURN relay: open the link without ice=relay.', true);
        endCall();
        return;
      }
      if (troupe.state === 'reconnecting') {
        troupe.reconnects++;
        showNotice('Reconnected.');
      }
      if (session) session.tries = 0;
      troupe.state = 'joined';
      troupe.refused = null;
      troupe.participantId = msg.participant.id;
      troupe.role = msg.participant.role;
      // With a token, the room is the token's.
      if (tokenMode !== 'dev') keepInURL(msg.room.id, '');
      $('room-title').textContent = msg.room.display_name || msg.room.name || msg.room.id;
      document.title = `${$('room-title').textContent} · Troupe`;
      if (troupe.local && troupe.role === 'subscriber') {
        troupe.local.getTracks().forEach((t) => t.stop());
        troupe.local = null;
      }
      troupe.pc = newPeerConnection(msg.ice_servers);
      troupe.layers = null; // the new connection's server says again
      troupe.toneOnEntry = msg.room.config.tone_on_entry_and_exit;
      troupe.roomLayout = speakerLayouts.includes(msg.room.config.layout) ? 'speaker' : 'grid';
      // Chat goes out on a data channel, opened before the first offer.
      $('chat').hidden = !msg.room.config.chat_enabled;
      troupe.dc = troupe.pc.createDataChannel('troupe-reliable');
      (msg.chat || []).forEach(showChat);
      if (msg.video_off && troupe.local) {
        // The room starts cameras off; the server mutes our video until we start it.
        troupe.local.getVideoTracks().forEach((t) => (t.enabled = false));
        $('mute-video').textContent = 'Start camera';
      }
      publish(troupe.pc);
      addParticipant(msg.participant);
      msg.participants.forEach(addParticipant);
      showHands(msg.hands || [], msg.room.config.prioritize_handraise);
      // A server that tells who speaks says so in joined; with an older
      // one the page listens for itself.
      clearInterval(levelTimer);
      levelTimer = null;
      if (Array.isArray(msg.speakers)) {
        showSpeakers(msg.speakers);
      } else {
        levelTimer = setInterval(() => pollLevels().catch(() => {}), levelInterval);
      }
      openSide(wide.matches);
      break;
    }
    case 'active-speakers':
      showSpeakers(msg.speakers || []);
      break;
    case 'hands':
      showHands(msg.hands, msg.prioritize);
      break;
    case 'chat':
      showChat(msg.chat);
      break;
    case 'offer': {
      const collision = makingOffer || pc.signalingState !== 'stable';
      ignoreOffer = collision; // impolite: our offer wins; the server rolls back
      if (ignoreOffer) return;
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      await pc.setLocalDescription();
      send({ type: 'answer', sdp: pc.localDescription.sdp });
      await applyLayers(pc);
      break;
    }
    case 'answer':
      await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      await applyLayers(pc);
      break;
    case 'candidate':
      try {
        await pc.addIceCandidate(msg.candidate || undefined);
      } catch (err) {
        if (!ignoreOffer) throw err;
      }
      break;
    case 'participant-joined':
      addParticipant(msg.participant);
      tone(660);
      break;
    case 'participant-left':
      removeParticipant(msg.participant_id);
      tone(440);
      break;
    case 'track-published':
      updateTracks(msg.participant_id, (ts) => ts.concat([msg.track]));
      keepMuted(msg);
      break;
    case 'track-updated': // a simulcast track's layers as they are now
      updateTracks(msg.participant_id, (ts) => ts.map((t) => (t.id === msg.track.id ? msg.track : t)));
      break;
    case 'track-unpublished': {
      const p = people.get(msg.participant_id);
      if (p) p.paused.delete(msg.track_id);
      updateTracks(msg.participant_id, (ts) => ts.filter((t) => t.id !== msg.track_id));
      break;
    }
    case 'track-paused':
    case 'track-resumed': {
      const p = people.get(msg.participant_id);
      if (!p) break;
      if (msg.type === 'track-paused') p.paused.set(msg.track_id, msg.reason);
      else p.paused.delete(msg.track_id);
      render(p);
      break;
    }
    case 'mute': {
      let kind = 'track';
      updateTracks(msg.participant_id, (ts) => ts.map((t) => {
        if (t.id !== msg.track_id) return t;
        kind = t.kind === 'audio' ? 'microphone' : 'camera';
        return { ...t, muted: msg.muted };
      }));
      if (msg.participant_id === troupe.participantId && msg.by_server) {
        showNotice(msg.muted ? `A moderator muted your ${kind}.` : '');
      }
      break;
    }
    case 'layers':
      troupe.layers = { mid: msg.mid, active: msg.active, paused: msg.paused };
      await applyLayers(pc);
      break;
    case 'left': {
      const [fault, text] = leaveReasons[msg.reason] || [true, `Removed from the room: ${msg.reason}.`];
      if (fault && session) {
        reconnect(text);
        break;
      }
      troupe.state = 'left';
      showNotice(text, fault);
      endCall();
      break;
    }
    case 'error':
      if (troupe.state === 'joining' || troupe.state === 'reconnecting') {
        // The join was refused; the socket closes next. A refusal for now
        // (the room moving to another node, a draining node) says how long
        // to wait: the next attempt waits at least that.
        troupe.refused = msg.code;
        if (session && msg.retry_after_ms > 0) session.retryAfter = msg.retry_after_ms;
        showNotice(refusal(msg.code, msg.message), true);
      } else {
        showNotice(`${msg.code}: ${msg.message}`, true);
      }
      break;
    case 'pong':
      break;
  }
  showState();
}

// mintToken asks the server for a join token: in dev mode POST /dev/token
// (which also creates the room), else, for a public room's link, POST
// /rooms/{id}/token. A refusal is thrown with what it means.
async function mintToken(room, name) {
  let r;
  if (tokenMode === 'dev') {
    const identity = 'web-' + Math.random().toString(36).slice(2, 10);
    r = await fetch('/dev/token?' + new URLSearchParams({ room, identity, name }), { method: 'POST' });
  } else {
    r = await fetch('/rooms/' + encodeURIComponent(room) + '/token', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(name ? { name } : {}),
    });
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = body.error || {};
    troupe.refused = e.code || String(r.status);
    throw new Error(refusal(e.code, e.message || r.statusText));
  }
  return body.token;
}

// keepMuted tells the server again that a camera or microphone this page
// has muted is muted, when its track is published: after a reconnection
// the new participant's tracks start unmuted.
function keepMuted(msg) {
  if (msg.participant_id !== troupe.participantId || !troupe.local || msg.track.muted) return;
  const tracks = msg.track.kind === 'audio' ? troupe.local.getAudioTracks() : troupe.local.getVideoTracks();
  if (tracks.length > 0 && !tracks.some((t) => t.enabled)) send({ type: 'mute', track_id: msg.track.id, muted: true });
}

// whyNotJoin says what is missing before the page can join, or ''.
function whyNotJoin(room, name, token) {
  if (tokenMode !== 'dev') {
    if (token) return '';
    if (!pathRoom) return 'Paste a join token to join: the server gives them out (POST /api/v1/rooms/{id}/tokens).';
    return name ? '' : 'Enter your name to join, or paste a join token.';
  }
  if (!room) return 'Enter a room id to join.';
  if (!roomIDPattern.test(room)) return 'A room id is 1 to 64 letters, digits, _ or -.';
  if (!name) return 'Enter your name to join.';
  return '';
}

async function join(ev) {
  ev.preventDefault();
  if (troupe.state === 'joining' || inCall()) return;
  const room = tokenMode === 'dev' ? $('room').value.trim() : pathRoom;
  const name = $('name').value.trim();
  let token = $('token').value.trim();
  if (badICEOption) {
    showNotice(badICEOption, true);
    return;
  }
  const why = whyNotJoin(room, name, token);
  if (why) {
    showNotice(why, true);
    const missing = tokenMode !== 'dev' ? (pathRoom ? 'name' : 'token') : !roomIDPattern.test(room) ? 'room' : 'name';
    $(missing).focus();
    return;
  }
  showNotice('');
  troupe.refused = null;
  if (tokenMode === 'dev') keepInURL(room, name);
  if (name) localStorage.setItem('troupe-name', name);
  const mine = ++attempt;
  troupe.state = 'joining';
  showState();
  try {
    // Without a token of one's own, the server mints one: dev mode, or
    // a public room's link. Either can mint again once it expires.
    const mint = token ? null : () => mintToken(room, name);
    if (mint) token = await mint();
    const local = (await (previewing || Promise.resolve(troupe.preview))) || null;
    if (mine !== attempt) return; // Leave was pressed meanwhile
    troupe.local = local;
    troupe.preview = null;
    $('preview').srcObject = null;
    session = { token, room, name, mint, tries: 0, timer: null, iceTimer: null };
    connect(token);
  } catch (err) {
    if (mine !== attempt) return;
    troupe.state = 'idle';
    showNotice(String(err.message || err), true);
    showState();
    return;
  }
  showState();
}

function connect(token) {
  const url = new URL('/rtc', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url);
  troupe.ws = ws;
  troupe.signaling = 'connecting';
  // A socket the page has moved on from (after left, or a new join) is
  // ignored to the end.
  ws.onopen = () => {
    if (troupe.ws !== ws) return;
    troupe.signaling = 'open';
    showState();
    // The token goes in the first message, not the URL, to stay out of logs.
    send({ type: 'join', token });
  };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    chain = chain.then(() => troupe.ws === ws && onMessage(msg)).catch((err) => showNotice(`${msg.type}: ${err}`, true));
  };
  ws.onclose = (e) => {
    chain = chain.then(() => {
      if (troupe.ws !== ws) return;
      troupe.signaling = `closed (${e.code}${e.reason ? ' ' + e.reason : ''})`;
      const lost = e.code === 1001 ? 'The server went away.' : `Lost the connection to the server (${e.code}).`;
      if (session && !finalClose(e.code, e.reason)) {
        reconnect(e.code >= 4000 && e.code < 5000 ? refusal(e.reason, e.reason) : lost);
        return;
      }
      // 4000 + status: the join was refused, and the error said why.
      if (e.code < 4000 || e.code >= 5000) {
        const known = e.code === 1000 && leaveReasons[e.reason];
        showNotice(known ? known[1] : lost, !known || known[0]);
      } else if (!troupe.refused) {
        troupe.refused = e.reason;
        showNotice(refusal(e.reason, e.reason), true);
      }
      if (e.code === 1000 && leaveReasons[e.reason]) troupe.state = 'left';
      endCall();
    });
  };
}

// reconnect lets go of the lost connection (keeping the camera, the
// microphone, muted or not, and a shared screen) and joins again after a
// jittered backoff, with the same token while it is valid. The peer
// connection is new: the old one's server side is gone.
function reconnect(why) {
  if (!session) return;
  clearTimeout(session.timer);
  clearTimeout(session.iceTimer);
  dropConnection();
  if (session.tries >= reconnectTries) {
    troupe.state = 'closed';
    showNotice(`${why} Could not reconnect after ${session.tries} attempts; press Join to try again.`, true);
    endCall();
    return;
  }
  session.tries++;
  troupe.state = 'reconnecting';
  troupe.attempt = session.tries;
  const base = Math.min(backoffMin * 2 ** (session.tries - 1), backoffMax);
  // The server's retry_after_ms, jittered upwards so that a room's members
  // do not all come back at once; else the backoff.
  const hint = session.retryAfter || 0;
  session.retryAfter = 0;
  const wait = Math.max(base / 2 + Math.random() * base, hint + Math.random() * hint / 2);
  showNotice(`${why} Reconnecting (attempt ${session.tries})…`, true);
  showState();
  const mine = session;
  session.timer = setTimeout(async () => {
    if (session !== mine) return;
    try {
      if (tokenExpired(mine.token)) {
        if (!mine.mint) {
          session = null;
          troupe.state = 'closed';
          showNotice('Your join token has expired: ask for a new link to join again.', true);
          endCall();
          return;
        }
        mine.token = await mine.mint();
        if (session !== mine) return;
      }
      connect(mine.token);
    } catch (err) {
      if (session === mine) reconnect(`${err.message || err}`);
    }
  }, wait);
}

// dropConnection closes the socket and the peer connection and forgets
// the others' tiles (the new connection brings them back).
function dropConnection() {
  const ws = troupe.ws;
  troupe.ws = null;
  if (ws) ws.close(1000);
  troupe.signaling = 'closed';
  if (troupe.pc) troupe.pc.close();
  troupe.pc = null;
  screenSender = null;
  troupe.connection = 'closed';
  clearInterval(levelTimer);
  levelTimer = null;
  people.forEach((_, id) => removeParticipant(id));
  makingOffer = ignoreOffer = false;
  troupe.dc = null;
  troupe.speakers = [];
  // The new connection's joined brings the chat's history and the hands again.
  troupe.chat = [];
  $('chat-log').replaceChildren();
  $('chat').hidden = true;
  showHands([], false);
}

// endCall lets go of the socket, the peer connection, the camera, a shared
// screen and the tiles; the page shows the pre-join screen again.
function endCall() {
  if (session) {
    clearTimeout(session.timer);
    clearTimeout(session.iceTimer);
    session = null;
  }
  dropConnection();
  if (troupe.local) troupe.local.getTracks().forEach((t) => t.stop());
  troupe.local = null;
  stopScreen();
  troupe.role = null;
  $('mute-audio').textContent = 'Mute mic';
  $('mute-video').textContent = 'Stop camera';
  if (troupe.state !== 'left' && troupe.state !== 'idle') troupe.state = 'closed';
  showState();
  startPreview(); // ready to join again
}

function leave() {
  if (troupe.state === 'joined' && troupe.ws && troupe.ws.readyState === WebSocket.OPEN) {
    send({ type: 'leave' }); // the server answers left
    return;
  }
  // Still joining: give up on it here.
  attempt++;
  troupe.state = 'left';
  showNotice(leaveReasons.left[1]);
  endCall();
}

function toggle(kind, button, on, off) {
  if (!troupe.local) return;
  const tracks = kind === 'audio' ? troupe.local.getAudioTracks() : troupe.local.getVideoTracks();
  if (!tracks.length) return;
  const muted = tracks.some((t) => t.enabled);
  tracks.forEach((t) => (t.enabled = !muted));
  send({ type: 'mute', kind, muted });
  button.textContent = muted ? on : off;
  button.classList.toggle('off', muted);
  const me = people.get(troupe.participantId);
  if (me) render(me);
}

// ---- Screen sharing: a second video track ----

async function toggleShare() {
  if (troupe.screen) {
    stopScreen();
    showState();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    if (err.name !== 'NotAllowedError') showNotice(`Could not share the screen (${err.name}).`, true);
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!track || troupe.state !== 'joined' || !troupe.pc) {
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  // The browser's own "stop sharing" ends the track.
  track.addEventListener('ended', () => {
    if (troupe.screen === stream) {
      stopScreen();
      showState();
    }
  });
  troupe.screen = stream;
  screenSender = troupe.pc.addTrack(track, stream);
  const me = people.get(troupe.participantId);
  if (me) render(me);
  showState();
}

// stopScreen stops sharing: the track goes, the server unpublishes it.
function stopScreen() {
  const stream = troupe.screen;
  if (!stream) return;
  troupe.screen = null;
  if (screenSender && troupe.pc && troupe.pc.signalingState !== 'closed') troupe.pc.removeTrack(screenSender);
  screenSender = null;
  stream.getTracks().forEach((t) => t.stop());
  const me = people.get(troupe.participantId);
  if (me) render(me);
}

// ---- People and chat beside the call ----

function openSide(open) {
  $('side').classList.toggle('closed', !open);
  $('side-toggle').setAttribute('aria-expanded', String(open));
  layoutTiles();
}

// ---- Wiring ----

$('join-form').addEventListener('submit', join);
$('hand').addEventListener('click', () => {
  send({ type: 'hand', raised: !troupe.hands.some((h) => h.participant_id === troupe.participantId) });
});
$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('chat-text').value.trim();
  if (!text || !troupe.dc || troupe.dc.readyState !== 'open') return;
  troupe.dc.send(JSON.stringify({ topic: 'chat', data: text }));
  $('chat-text').value = '';
});
$('leave').addEventListener('click', leave);
$('mute-audio').addEventListener('click', (e) => toggle('audio', e.target, 'Unmute mic', 'Mute mic'));
$('mute-video').addEventListener('click', (e) => toggle('video', e.target, 'Start camera', 'Stop camera'));
$('share').addEventListener('click', toggleShare);
$('view').addEventListener('click', () => {
  troupe.chosenView = troupe.view === 'speaker' ? 'grid' : 'speaker';
  layoutTiles();
});
$('side-toggle').addEventListener('click', () => openSide($('side').classList.contains('closed')));
['camera', 'microphone'].forEach((id) => $(id).addEventListener('change', restartPreview));
$('speaker').addEventListener('change', () => document.querySelectorAll('video').forEach(useSpeaker));

// Keys: m microphone, v camera, s screen, h hand, g view, p people and
// chat, Escape closes them on a phone. Not while typing.
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || !inCall()) return;
  if (e.target.closest && e.target.closest('input, select, textarea')) return;
  if (e.key === 'Escape' && !wide.matches) {
    openSide(false);
    return;
  }
  const id = { m: 'mute-audio', v: 'mute-video', s: 'share', h: 'hand', g: 'view', p: 'side-toggle' }[e.key.toLowerCase()];
  if (id && !$(id).disabled) {
    e.preventDefault();
    $(id).click();
  }
});

// What the address gives: the room, a name, and perhaps a token, which is
// taken out of the address (and kept for this tab, so that a reload still
// works) to stay out of history and shared screens.
(() => {
  const params = new URLSearchParams(location.search);
  const key = 'troupe-token:' + location.pathname;
  let token = params.get('token') || '';
  if (token) {
    sessionStorage.setItem(key, token);
    params.delete('token');
    history.replaceState(null, '', location.pathname + (params.size ? '?' + params : ''));
  } else {
    token = sessionStorage.getItem(key) || '';
  }
  $('token').value = token;
  if (badICEOption) showNotice(badICEOption, true);
  $('room').value = pathRoom;
  $('name').value = params.get('name') || localStorage.getItem('troupe-name') || '';
  // A token names the room and the person; dev mode asks for both; a
  // room's link without a token asks for a name (a public room) or a token.
  $('token-field').hidden = tokenMode === 'dev' || Boolean(token);
  $('room-field').hidden = tokenMode !== 'dev';
  $('name-field').hidden = tokenMode !== 'dev' && (Boolean(token) || !pathRoom);
  $('room-title').textContent = pathRoom;
  if (pathRoom) $('prejoin-title').textContent = `Join ${pathRoom}`;
})();
showState();
startPreview();
