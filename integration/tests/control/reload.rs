//! Hot reload, by SIGHUP and by `taskmasterctl reload`.
