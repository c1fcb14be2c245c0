from tinymcu.cli import main

main()
