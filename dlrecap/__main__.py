from dlrecap.cli import main

main()
