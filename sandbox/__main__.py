from sandbox.app import main

main()
