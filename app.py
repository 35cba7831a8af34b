"""Start the ffclr browser app:
`python app.py [--host 127.0.0.1] [--port 7860] [--workspace DIR] [--auth-file PATH]` (all
options: `python app.py --help`), from any directory (Python puts this file's folder, which
holds `ui`, `ffclr` and `store`, on the path). The first start in a workspace opens on the
built-in demo data (`--no-demo`: empty).
`ui.main` turns off Gradio's analytics and the Hugging Face hub before Gradio is imported."""
import sys

if __name__ == "__main__":
    from ui.main import main

    sys.exit(main())
