"""A small driver of the storylab app page for selenium tests: tabs, buttons, uploads, what is shown."""

from __future__ import annotations

import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


class AppPage:
    """The storylab app open in a browser."""

    def __init__(self, driver, url: str, screenshots: Path) -> None:
        self.driver, self.url, self.screenshots = driver, url, screenshots

    def open(self) -> None:
        """Load the page (once per session) and wait for the first tab's button."""
        if not self.driver.current_url.startswith(self.url):
            self.driver.get(self.url)
        WebDriverWait(self.driver, 30).until(lambda d: d.find_elements(By.ID, "guidance-run"))

    def tab(self, name: str) -> None:
        """Switch to the tab labelled ``name``."""
        buttons = [b for b in self.driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name]
        assert buttons, f"no tab '{name}'"
        buttons[0].click()

    def text(self, elem_id: str) -> str:
        """Visible text of a component."""
        return self.driver.find_element(By.ID, elem_id).text.strip()

    def run(self, button_id: str, status_id: str, timeout: float = 60.0) -> tuple[str, float]:
        """Click a button and wait until the status box shows a new line; return it and the seconds it took."""
        before = self.text(status_id)
        t0 = time.perf_counter()
        self.driver.find_element(By.ID, button_id).click()
        WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            lambda d: (t := self.text(status_id)) and t != before)
        return self.text(status_id), time.perf_counter() - t0

    def type_into(self, css: str, text: str) -> None:
        """Replace the text of an input or textarea."""
        box = self.driver.find_element(By.CSS_SELECTOR, css)
        box.clear()
        box.send_keys(text)

    def upload(self, elem_id: str, path: Path) -> None:
        """Put a file into an upload component and wait until it holds the file (name shown, or no file input left)."""
        from selenium.common.exceptions import StaleElementReferenceException

        def holds(d) -> bool:
            try:
                root = d.find_element(By.ID, elem_id)  # found again each time: gradio re-renders it
                return (path.name in (root.get_attribute("textContent") or "")
                        or bool(root.find_elements(By.CSS_SELECTOR, "img"))
                        or not root.find_elements(By.CSS_SELECTOR, "input[type=file]"))
            except StaleElementReferenceException:
                return False

        self.driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys(str(path))
        WebDriverWait(self.driver, 90).until(holds)

    def image_size(self, elem_id: str) -> tuple[int, int]:
        """Natural (width, height) of the image a component shows, (0, 0) if none has loaded."""
        imgs = self.driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
        if not imgs:
            return 0, 0
        WebDriverWait(self.driver, 10).until(lambda d: d.execute_script("return arguments[0].complete", imgs[0]))
        return tuple(self.driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                                imgs[0]))

    def table(self, elem_id: str) -> list[list[str]]:
        """Rows of a gradio Dataframe as cell texts, the header row first (gradio 6: a grid of role=row divs)."""
        root = self.driver.find_element(By.ID, elem_id)
        text = lambda el: (el.get_attribute("textContent") or "").strip()  # noqa: E731
        header = [text(th).replace("⋮", "").strip() for th in root.find_elements(By.CSS_SELECTOR, "th[role=columnheader]")]
        rows = [[text(c) for c in row.find_elements(By.CSS_SELECTOR, "[role=gridcell]")]
                for row in root.find_elements(By.CSS_SELECTOR, "div[role=row]")]
        return [header] + [r for r in rows if any(r)]

    def screenshot(self, name: str) -> Path:
        """Save the window as ``<name>.png`` in the screenshots folder."""
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
