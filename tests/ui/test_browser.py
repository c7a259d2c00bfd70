"""The web UI as a person uses it: `audiotools ui` driven in headless Chromium (Debian's, with
its ChromeDriver, installed by scripts/install_browser.sh). Fill the form, press the button,
wait for the result, and check in the browser that the player's audio decodes to non-silent
sound of the asked duration; bad input shows a message and the page keeps working. Every step
saves a screenshot (into $AUDIOTOOLS_UI_SCREENSHOTS when set, to look at)."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from audiotools.data.audio import audio_write
from tests.conftest import REPO
from tests.ui.conftest import MAX_DURATION

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_SECONDS = 90  # for an element or a result
# As root and offline: no sandbox, and none of Chromium's own network traffic.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")
# Decodes the audio a player links to, in the page, at its own rate: [seconds, peak].
DECODE = """
const [link, done] = arguments;
fetch(link).then(r => r.arrayBuffer())
  .then(data => new OfflineAudioContext(1, 1, 16000).decodeAudioData(data))
  .then(audio => {
    let peak = 0;
    for (let c = 0; c < audio.numberOfChannels; c++)
      for (const v of audio.getChannelData(c)) peak = Math.max(peak, Math.abs(v));
    done([audio.duration, peak]);
  }).catch(error => done(String(error)));
"""


def _browser_installed() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@pytest.fixture(scope="module")
def browser():
    if not _browser_installed():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("browser tests: no /usr/bin/chromium and chromedriver, and not root to "
                        "run scripts/install_browser.sh")
        subprocess.run(["bash", str(REPO / "scripts" / "install_browser.sh")], check=True,
                       timeout=900)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("AUDIOTOOLS_UI_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    """A second of a 440 Hz tone with a 660 Hz overtone, 44.1 kHz stereo."""
    time = torch.arange(44100) / 44100
    wave = 0.3 * torch.sin(2 * math.pi * 440 * time) + 0.1 * torch.sin(2 * math.pi * 660 * time)
    return audio_write(tmp_path_factory.mktemp("upload") / "tone.wav",
                       torch.stack([wave, 0.8 * wave]), 44100)


class Page:
    """The served page, driven by element ids (`<model>-<panel>-<part>`, audiotools.ui)."""

    def __init__(self, driver, url: str, shots: Path):
        self.driver, self.shots = driver, shots
        self.wait = WebDriverWait(driver, WAIT_SECONDS)
        driver.get(url)
        self.wait.until(ready.visibility_of_element_located((By.ID, "header")))

    def find(self, css: str):
        return self.wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def open_tab(self, label: str) -> None:
        tab = self.wait.until(ready.element_to_be_clickable(
            (By.XPATH, f"//button[@role='tab'][normalize-space(.)='{label}']")))
        tab.click()

    def type_number(self, element_id: str, value: float) -> None:
        field = self.find(f"#{element_id} input")
        field.clear()
        field.send_keys(str(value))
        field.send_keys("\t")  # Gradio takes the value on blur

    def upload(self, element_id: str, path: Path) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f"#{element_id} input[type=file]").send_keys(
            str(path))
        self.find(f"#{element_id} [data-testid^='waveform']")  # the upload is shown

    def press(self, element_id: str) -> None:
        self.find(f"#{element_id}").click()

    def result_link(self, element_id: str, previous: str | None = None) -> str:
        """The download link of the player `element_id` once it holds a (new) result."""
        def linked(driver):
            links = driver.find_elements(By.CSS_SELECTOR, f"#{element_id} a[download]")
            href = links[0].get_attribute("href") if links else None
            return href if href and href != previous else False
        try:
            return self.wait.until(linked)
        except TimeoutException:  # say what the page shows instead of a bare timeout
            shown = [toast.text for toast in self.driver.find_elements(
                By.CSS_SELECTOR, ".toast-body")]
            path = self.screenshot(f"no_result_{element_id}")
            raise AssertionError(f"#{element_id} got no result in {WAIT_SECONDS} s; "
                                 f"messages on the page: {shown or 'none'}; see {path}") from None

    def decoded(self, link: str) -> tuple[float, float]:
        result = self.driver.execute_async_script(DECODE, link)
        assert isinstance(result, list), f"the browser could not decode {link}: {result}"
        return float(result[0]), float(result[1])

    def toast(self, text: str) -> str:
        """The text of the message holding `text` (it stays until closed or timed out)."""
        found = self.wait.until(ready.visibility_of_element_located(
            (By.XPATH, f"//*[contains(@class, 'toast-body')][contains(., '{text}')]")))
        return found.text

    def close_toasts(self) -> None:
        for button in self.driver.find_elements(By.CSS_SELECTOR, ".toast-close"):
            button.click()

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        assert self.driver.save_screenshot(str(path))
        assert path.stat().st_size > 10_000
        return path


def test_a_person_generates_reconstructs_classifies_and_browses_experiments(
        browser, ui_url, shots, tone):
    page = Page(browser, ui_url, shots)
    page.screenshot("01_page")

    # Diffusion: a duration, a condition, Generate; the player holds 0.7 s of sound.
    page.type_number("diffusion-generate-duration", 0.7)
    page.press("diffusion-generate-button")
    first = page.result_link("diffusion-generate-audio")
    seconds, peak = page.decoded(first)
    assert seconds == pytest.approx(0.7, abs=1e-3) and peak > 0.01
    page.find("#diffusion-generate-spectrogram img")
    assert "0.70 s, 16000 Hz, mono" in page.find("#diffusion-generate-info").text
    page.screenshot("02_generated")

    # A duration out of range: a message in the page, and the page still generates.
    page.type_number("diffusion-generate-duration", MAX_DURATION + 5)
    page.press("diffusion-generate-button")
    message = page.toast(f"at most {MAX_DURATION:g} seconds")
    assert "Traceback" not in message
    page.screenshot("03_error_message")
    page.close_toasts()
    page.type_number("diffusion-generate-duration", 0.4)
    page.press("diffusion-generate-button")
    again = page.result_link("diffusion-generate-audio", previous=first)
    assert page.decoded(again)[0] == pytest.approx(0.4, abs=1e-3)

    # MusicGen: Generate with its defaults; the player holds the Duration field's seconds.
    page.open_tab("musicgen")
    default = float(page.find("#musicgen-generate-duration input").get_attribute("value"))
    page.press("musicgen-generate-button")
    seconds, peak = page.decoded(page.result_link("musicgen-generate-audio"))
    assert seconds == pytest.approx(default, abs=1e-3) and peak > 0
    page.screenshot("04_musicgen")

    # Autoencoder: upload, Reconstruct; the reconstruction keeps the upload's length.
    page.open_tab("autoencoder")
    page.upload("autoencoder-reconstruct-input", tone)
    page.press("autoencoder-reconstruct-button")
    seconds, peak = page.decoded(page.result_link("autoencoder-reconstruct-audio"))
    assert seconds == pytest.approx(1.0, abs=1e-3) and peak > 0
    assert "SI-SNR" in page.find("#autoencoder-reconstruct-info").text
    page.screenshot("05_reconstruct")

    # Classifier: upload, Classify; the probabilities name the spoken digits.
    page.open_tab("classifier")
    page.upload("classifier-classify-input", tone)
    page.press("classifier-classify-button")
    probabilities = page.wait.until(lambda driver: driver.find_element(
        By.ID, "classifier-classify-probabilities").text.count("%") >= 3 and driver.find_element(
        By.ID, "classifier-classify-probabilities").text)
    assert any(digit in probabilities for digit in ("zero", "one", "two", "three", "four",
                                                     "five", "six", "seven", "eight", "nine"))
    page.screenshot("06_classify")

    # Experiments: the table of XPs and their curves.
    page.open_tab("Experiments")
    table = page.wait.until(lambda driver: "classifier/debug" in driver.find_element(
        By.ID, "experiments-table").text and driver.find_element(By.ID, "experiments-table"))
    assert "done" in table.text and "musicgen/debug" in table.text
    page.find("#experiments-curves img, #experiments-curves svg, #experiments-curves canvas")
    page.screenshot("07_experiments")
