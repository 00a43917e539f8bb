"""rf-render: RenderFlow from a shell or a farm job (`cli.main`); its commands by family."""
