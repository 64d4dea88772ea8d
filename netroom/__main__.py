from netroom.cli import main

raise SystemExit(main())
