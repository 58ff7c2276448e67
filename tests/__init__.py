"""quizroom.tests"""
