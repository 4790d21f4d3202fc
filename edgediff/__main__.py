from edgediff.cli import main

raise SystemExit(main())
