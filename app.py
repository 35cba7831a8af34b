"""Start the ffclr browser app:
`python app.py [--host 127.0.0.1] [--port 7860] [--workspace DIR] [--auth USER:PASS]`."""
import os
import sys

for _name, _value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"),
                      ("HF_HUB_DISABLE_TELEMETRY", "1")):
    os.environ[_name] = _value

if __name__ == "__main__":
    from ui.main import main

    sys.exit(main())
