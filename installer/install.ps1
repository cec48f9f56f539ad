<#
.SYNOPSIS
  Hygie Avatar installer for Windows. Safe to run again (idempotent).

.DESCRIPTION
  Creates a virtual environment, installs hygie-avatar into it and, when given the unzipped
  Unity Capture release (-UnityCaptureDir), registers its DirectShow camera under the name
  "Hygie Avatar" (needs an administrator prompt). Without Unity Capture, OBS Studio's own
  "OBS Virtual Camera" also works. Prints the next steps.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File installer\install.ps1 -Yes
  powershell -ExecutionPolicy Bypass -File installer\install.ps1 -UnityCaptureDir C:\Downloads\UnityCapture\Install
#>
param(
    [switch]$Yes,                       # answer yes to every question (CI; or $env:HYGIE_INSTALL_YES=1)
    [string]$Venv = $(if ($env:HYGIE_VENV) { $env:HYGIE_VENV } else { Join-Path $env:LOCALAPPDATA "hygie-avatar\venv" }),
    [switch]$Editable,                  # pip install -e (developers)
    [string]$PipArgs = "",              # extra pip arguments, e.g. "--no-deps"
    [string]$UnityCaptureDir = ""       # folder holding UnityCaptureFilter64bit.dll
)
$ErrorActionPreference = "Stop"
$CameraName = "Hygie Avatar"
$Repo = Split-Path -Parent $PSScriptRoot
if ($env:HYGIE_INSTALL_YES -eq "1") { $Yes = $true }

function Say($m) { Write-Host "==> $m" }
function Confirm-Step($q) {
    if ($Yes) { return $true }
    return (Read-Host "$q [y/N]") -match '^(y|yes)$'
}

# 1. Python >= 3.10 (the py launcher first, then python on PATH)
$Py = $null
foreach ($c in @(@("py", "-3"), @("python"))) {
    try {
        & $c[0] $c[1..9] -c "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)" 2>$null
        if ($LASTEXITCODE -eq 0) { $Py = $c; break }
    } catch { }
}
if (-not $Py) { throw "Python >= 3.10 not found. Install it from python.org (tick 'Add python.exe to PATH') and re-run." }

# 2. venv (kept when it exists)
$VenvPy = Join-Path $Venv "Scripts\python.exe"
if (Test-Path $VenvPy) {
    Say "virtual environment exists: $Venv"
} else {
    Say "creating virtual environment $Venv"
    New-Item -ItemType Directory -Force -Path (Split-Path -Parent $Venv) | Out-Null
    & $Py[0] $Py[1..9] -m venv $Venv
    if ($LASTEXITCODE -ne 0) { throw "python -m venv failed" }
}

# 3. the package (sounddevice's Windows wheel bundles PortAudio)
Say "installing hygie-avatar from $Repo"
$extra = if ($PipArgs) { $PipArgs -split ' ' } else { @() }
if ($Editable) { & $VenvPy -m pip install --disable-pip-version-check -q @extra -e $Repo }
else { & $VenvPy -m pip install --disable-pip-version-check -q @extra $Repo }
if ($LASTEXITCODE -ne 0) { throw "pip install failed (see above)" }
$Hygie = Join-Path $Venv "Scripts\hygie.exe"
Say "installed: $Hygie"

# 4. virtual camera: Unity Capture registered as "Hygie Avatar"
$Category = "Registry::HKEY_CLASSES_ROOT\CLSID\{860BB310-5D01-11d0-BD3B-00A0C911CE86}\Instance"
$names = @()
if (Test-Path $Category) {
    $names = Get-ChildItem $Category | ForEach-Object { (Get-ItemProperty $_.PSPath).FriendlyName }
}
if ($names -contains $CameraName) {
    Say "camera '$CameraName' is already registered"
} elseif ($UnityCaptureDir) {
    $dll = Join-Path $UnityCaptureDir "UnityCaptureFilter64bit.dll"
    if (-not (Test-Path $dll)) { throw "$dll not found: pass the Install folder of the Unity Capture release" }
    if (Confirm-Step "Register Unity Capture as '$CameraName' (administrator prompt)?") {
        $arg = "/s `"/i:UnityCaptureName=$CameraName`" `"$dll`""
        $p = Start-Process regsvr32.exe -ArgumentList $arg -Verb RunAs -Wait -PassThru
        if ($p.ExitCode -ne 0) { throw "regsvr32 failed with code $($p.ExitCode)" }
        Say "registered '$CameraName'"
    }
} elseif ($names -contains "OBS Virtual Camera") {
    Say "using OBS Virtual Camera (install Unity Capture for a camera named '$CameraName': -UnityCaptureDir DIR)"
} else {
    Say "no virtual camera yet: download Unity Capture (github.com/schellingb/UnityCapture), unzip it and run"
    Write-Host "    install.ps1 -UnityCaptureDir <unzipped>\Install   (or in OBS: Start Virtual Camera once)"
}

Write-Host @"

Next steps:
  1. $Hygie doctor              # checks audio, camera, OBS; prints fixes
  2. $Hygie enroll my_video.mp4 -o my_avatar   # needs: pip install .[train]
  3. $Hygie run --avatar my_avatar
  OBS: Tools -> WebSocket Server Settings -> Enable, then: $Hygie obs setup
       and Tools -> Scripts -> + -> $Repo\plugin\hygie_obs.py
"@
