from mmcodec.cli import main

raise SystemExit(main())
