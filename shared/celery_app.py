"""A Celery app with no tasks of its own, for Flower and `celery inspect` over every queue."""

from shared.bus import create_celery
from shared.settings import PlatformSettings

app = create_celery(PlatformSettings(), "salesdp")
