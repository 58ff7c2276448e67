"""quizroom.migrations"""
