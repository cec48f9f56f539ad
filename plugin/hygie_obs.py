"""Hygie Avatar - OBS script (Tools -> Scripts -> + -> this file).

Standard library + obspython only: OBS embeds its own Python (<= 3.12), which does not
see the virtual environment where `hygie` is installed.

What it does
- Properties: the `hygie` command, avatar package path, audio input, extra arguments,
  Start / Stop agent buttons and a status line.
- Starts `hygie run --avatar PATH --input DEVICE ...` as a background process and stops it
  when the script is unloaded or OBS exits (terminate, then kill after 3 s).
- Frontend hotkeys (Settings -> Hotkeys), saved and restored with obs_hotkey_save/load:
    "Hygie: toggle avatar"      -> BroadcastCustomEvent {"hygie": {"avatar": "toggle"}}
    "Hygie: start/stop agent"   -> starts or stops the agent process

Design of the toggle: the hotkey does not talk to the agent directly. It asks OBS's own
websocket server (the same one the agent already listens to) to broadcast the custom event,
through a tiny websocket client below. So the toggle works whether the agent was started by
this script, a terminal or a service; there is one control path to test, no extra port or
file, and the same event works from a Stream Deck. The port and password are read from OBS's
config (global.ini [OBSWebSocket] for OBS 28-29, plugin_config/obs-websocket/config.json for
30+) or HYGIE_OBS_PORT / HYGIE_OBS_PASSWORD. The request runs on a worker thread so the
hotkey thread never blocks; that thread touches no obspython API (results are picked up by
the 1 s timer, which runs on OBS's UI thread).
"""
import base64
import configparser
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading

try:
    import obspython as obs  # only inside OBS
except ImportError:  # imported by tests / tools outside OBS
    obs = None

SCRIPT_VERSION = "0.1.0"
HOTKEY_TOGGLE = "hygie_toggle_avatar"
HOTKEY_AGENT = "hygie_start_stop_agent"

_state = {
    "settings": None,
    "proc": None,  # subprocess.Popen of the agent
    "status": "agent stopped",
    "hotkeys": {},  # name -> hotkey id
    "messages": [],  # log lines produced on worker threads, flushed by the timer
    "log_path": os.path.join(tempfile.gettempdir(), "hygie-agent.log"),
    "toggles_sent": 0,
}
_lock = threading.Lock()


# --------------------------------------------------------------------------- logging
def _log(msg):
    if obs is not None:
        obs.script_log(obs.LOG_INFO, msg)
    else:
        print(msg)


def _log_later(msg):
    with _lock:
        _state["messages"].append(msg)


# --------------------------------------------------------------- websocket settings
def obs_config_dirs(env=None, platform=None):
    env = os.environ if env is None else env
    platform = platform or sys.platform
    home = env.get("HOME") or env.get("USERPROFILE") or os.path.expanduser("~")
    if platform.startswith("win"):
        return [os.path.join(env.get("APPDATA") or os.path.join(home, "AppData", "Roaming"), "obs-studio")]
    if platform == "darwin":
        return [os.path.join(home, "Library", "Application Support", "obs-studio")]
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [os.path.join(xdg, "obs-studio"),
            os.path.join(home, ".var", "app", "com.obsproject.Studio", "config", "obs-studio")]


def websocket_settings(env=None, platform=None):
    """(port, password) of this OBS's websocket server."""
    env = os.environ if env is None else env
    port, password = 4455, ""
    for d in obs_config_dirs(env, platform):
        j = os.path.join(d, "plugin_config", "obs-websocket", "config.json")
        ini = os.path.join(d, "global.ini")
        if os.path.isfile(j):
            try:
                with open(j, encoding="utf-8") as f:
                    c = json.load(f)
                port = int(c.get("server_port", port))
                password = c.get("server_password", "") if c.get("auth_required", True) else ""
                break
            except (OSError, ValueError):
                pass
        if os.path.isfile(ini):
            cp = configparser.ConfigParser(interpolation=None, strict=False)
            cp.optionxform = str
            try:
                with open(ini, encoding="utf-8-sig") as f:
                    cp.read_string(f.read())
            except (OSError, configparser.Error):
                continue
            if cp.has_section("OBSWebSocket"):
                s = cp["OBSWebSocket"]
                port = int(s.get("ServerPort", port))
                auth = s.get("AuthRequired", "true").lower() == "true"
                password = s.get("ServerPassword", "") if auth else ""
                break
    if env.get("HYGIE_OBS_PORT"):
        port = int(env["HYGIE_OBS_PORT"])
    if "HYGIE_OBS_PASSWORD" in env:
        password = env["HYGIE_OBS_PASSWORD"]
    return port, password


# ------------------------------------------------------ minimal websocket client (RFC 6455)
class _Ws:
    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout)
        self.rf = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: obswebsocket.json\r\n\r\n" % (host, port, key)).encode())
        status = self.rf.readline()
        if b" 101 " not in status:
            raise ConnectionError("not a websocket server: %r" % status[:80])
        while self.rf.readline() not in (b"\r\n", b""):
            pass

    def send(self, obj):
        data = json.dumps(obj).encode()
        n = len(data)
        head = bytes([0x81])  # FIN + text
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)  # clients must mask
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        """Next JSON message, or None when the server closed (e.g. code 4009: bad password)."""
        while True:
            h = self.rf.read(2)
            if len(h) < 2:
                return None
            op, n = h[0] & 0x0F, h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.rf.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.rf.read(8))[0]
            payload = self.rf.read(n)
            if op == 8:
                return None
            if op == 1:
                return json.loads(payload.decode())

    def close(self):
        try:
            self.sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))
        except OSError:
            pass
        self.sock.close()


def obs_request(request_type, request_data, port, password, host="127.0.0.1", timeout=3.0):
    """One obs-websocket v5 request; returns responseData or raises RuntimeError."""
    ws = _Ws(host, port, timeout)
    try:
        hello = ws.recv()
        if not hello or hello.get("op") != 0:
            raise RuntimeError("no obs-websocket v5 hello")
        auth = ""
        a = hello["d"].get("authentication")
        if a:
            secret = base64.b64encode(hashlib.sha256((password + a["salt"]).encode()).digest())
            auth = base64.b64encode(hashlib.sha256(secret + a["challenge"].encode()).digest()).decode()
        ws.send({"op": 1, "d": {"rpcVersion": 1, "authentication": auth, "eventSubscriptions": 0}})
        ident = ws.recv()
        if not ident or ident.get("op") != 2:
            raise RuntimeError("OBS refused the websocket password (set HYGIE_OBS_PASSWORD)")
        ws.send({"op": 6, "d": {"requestType": request_type, "requestId": "hygie-script",
                                "requestData": request_data}})
        while True:
            m = ws.recv()
            if m is None:
                raise RuntimeError("OBS closed the connection")
            if m.get("op") == 7 and m["d"].get("requestId") == "hygie-script":
                st = m["d"].get("requestStatus", {})
                if not st.get("result"):
                    raise RuntimeError("%s failed: %s" % (request_type, st.get("comment")))
                return m["d"].get("responseData") or {}
    finally:
        ws.close()


def send_avatar_command(cmd):
    """Broadcast {"hygie": {"avatar": cmd}} through OBS's websocket (worker thread)."""
    def work():
        try:
            port, pw = websocket_settings()
            obs_request("BroadcastCustomEvent", {"eventData": {"hygie": {"avatar": cmd}}}, port, pw)
            with _lock:
                _state["toggles_sent"] += 1
            _log_later("[hygie] avatar %s sent" % cmd)
        except (OSError, RuntimeError, ValueError) as e:
            _log_later("[hygie] could not send avatar %s: %s. Enable OBS's websocket server "
                       "(Tools -> WebSocket Server Settings)." % (cmd, e))
    threading.Thread(target=work, name="hygie-toggle", daemon=True).start()


# ------------------------------------------------------------------------ the agent
def agent_command(settings_get):
    exe = settings_get("hygie_cmd") or shutil.which("hygie") or "hygie"
    cmd = [exe, "run"]
    if settings_get("avatar"):
        cmd += ["--avatar", settings_get("avatar")]
    if settings_get("audio_device"):
        cmd += ["--input", settings_get("audio_device")]
    extra = settings_get("extra_args")
    if extra:
        cmd += shlex.split(extra, posix=not sys.platform.startswith("win"))
    return cmd


def agent_running():
    p = _state["proc"]
    return p is not None and p.poll() is None


def start_agent():
    if agent_running():
        return
    s = _state["settings"]
    get = (lambda k: obs.obs_data_get_string(s, k)) if (obs and s) else (lambda k: "")
    cmd = agent_command(get)
    kw = {}
    if sys.platform.startswith("win"):
        kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | 0x08000000  # no console window
    else:
        kw["start_new_session"] = True  # OBS's Ctrl-C / signals do not reach it
    try:
        logf = open(_state["log_path"], "ab")
        _state["proc"] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                          stderr=subprocess.STDOUT, **kw)
        logf.close()
        _set_status("agent running (pid %d), log: %s" % (_state["proc"].pid, _state["log_path"]))
        _log("[hygie] started: %s" % " ".join(cmd))
    except OSError as e:
        _set_status("cannot start agent: %s. Set the 'hygie command' path (e.g. the venv's bin/hygie)." % e)
        _log("[hygie] " + _state["status"])


def stop_agent(timeout=3.0):
    p = _state["proc"]
    _state["proc"] = None
    if p is None or p.poll() is not None:
        _set_status("agent stopped")
        return
    try:
        if sys.platform.startswith("win"):
            p.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            p.terminate()  # SIGTERM: the agent closes camera and streams cleanly
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(2)
    except OSError:
        pass
    _set_status("agent stopped")
    _log("[hygie] agent stopped")


def _set_status(text):
    _state["status"] = text
    s = _state["settings"]
    if obs is not None and s is not None:
        obs.obs_data_set_string(s, "status", text)


# ------------------------------------------------------------------ OBS callbacks
def _on_toggle_hotkey(pressed):
    if pressed:
        send_avatar_command("toggle")


def _on_agent_hotkey(pressed):
    if pressed:
        stop_agent() if agent_running() else start_agent()


def _on_timer():
    with _lock:
        msgs, _state["messages"] = _state["messages"], []
    for m in msgs:
        _log(m)
    p = _state["proc"]
    if p is not None and p.poll() is not None:
        _state["proc"] = None
        _set_status("agent exited with code %s; see %s" % (p.returncode, _state["log_path"]))
        _log("[hygie] " + _state["status"])


def _on_frontend_event(event):
    if event == obs.OBS_FRONTEND_EVENT_EXIT:
        stop_agent()


def script_description():
    return ("<b>Hygie Avatar</b><br>Starts the lip-sync agent and toggles the avatar. "
            "Hotkeys: Settings -> Hotkeys -> 'Hygie: toggle avatar', 'Hygie: start/stop agent'. "
            "Needs OBS's websocket server enabled (Tools -> WebSocket Server Settings).")


def script_defaults(settings):
    obs.obs_data_set_default_string(settings, "hygie_cmd", shutil.which("hygie") or "")


def script_properties():
    props = obs.obs_properties_create()
    obs.obs_properties_add_path(props, "hygie_cmd", "hygie command", obs.OBS_PATH_FILE, "", None)
    obs.obs_properties_add_path(props, "avatar", "Avatar package", obs.OBS_PATH_FILE,
                                "Avatar (*.hygie avatar.json);;All files (*.*)", None)
    obs.obs_properties_add_text(props, "audio_device", "Audio input (name)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "extra_args", "Extra arguments", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_button(props, "start", "Start agent", lambda *_: (start_agent(), True)[1])
    obs.obs_properties_add_button(props, "stop", "Stop agent", lambda *_: (stop_agent(), True)[1])
    obs.obs_properties_add_button(props, "toggle", "Toggle avatar",
                                  lambda *_: (send_avatar_command("toggle"), True)[1])
    obs.obs_properties_add_text(props, "status", "Status", obs.OBS_TEXT_INFO)
    return props


def script_update(settings):
    _state["settings"] = settings


def script_load(settings):
    _state["settings"] = settings
    for name, desc, cb in ((HOTKEY_TOGGLE, "Hygie: toggle avatar", _on_toggle_hotkey),
                           (HOTKEY_AGENT, "Hygie: start/stop agent", _on_agent_hotkey)):
        hid = obs.obs_hotkey_register_frontend(name, desc, cb)
        arr = obs.obs_data_get_array(settings, name)
        obs.obs_hotkey_load(hid, arr)
        obs.obs_data_array_release(arr)
        _state["hotkeys"][name] = hid
    obs.timer_add(_on_timer, 1000)
    obs.obs_frontend_add_event_callback(_on_frontend_event)
    _set_status("agent stopped")
    _log("[hygie] Hygie Avatar script %s loaded (python %s)" % (SCRIPT_VERSION, sys.version.split()[0]))


def script_save(settings):
    for name, hid in _state["hotkeys"].items():
        arr = obs.obs_hotkey_save(hid)
        obs.obs_data_set_array(settings, name, arr)
        obs.obs_data_array_release(arr)


def script_unload():
    obs.timer_remove(_on_timer)
    stop_agent()
