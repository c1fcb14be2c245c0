from tinymcu.cli import run

run()
