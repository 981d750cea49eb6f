"""One router per resource (每类记录一个路由)."""
